/* A C extension for the --native tests (tests/integration/test_native.py), compiled at
 * test time against the interpreter under test (2.7 and 3.6+, free-threaded builds too):
 * call_back(f) calls f from C (Python -> C -> Python), spin(seconds) spins in C with the
 * GIL released, crash() reads through a NULL pointer and crash_in_thread() makes a
 * thread of its own do it (the core-dump tests, tests/integration/test_core.py). Every function is noinline and the file is built with -O0, so each C
 * function named in the test has a frame of its own. */
#include <Python.h>

#include <pthread.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long native_ext_counter;

__attribute__((noinline)) static PyObject *native_ext_call_python(PyObject *callable) {
    PyObject *result = PyObject_CallObject(callable, NULL);
    native_ext_counter++; /* work after the call: never a tail call */
    return result;
}

static PyObject *native_ext_call_back(PyObject *self, PyObject *args) {
    PyObject *callable;
    PyObject *result;
    (void)self;
    if (!PyArg_ParseTuple(args, "O", &callable)) return NULL;
    result = native_ext_call_python(callable);
    native_ext_counter++;
    return result;
}

static double native_ext_seconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

__attribute__((noinline)) static void native_ext_spin_loop(double seconds) {
    struct timespec start;
    int i;
    clock_gettime(CLOCK_MONOTONIC, &start);
    /* One write(2) of a short line is atomic on a pipe: never mixed with Python's "ready". */
    if (write(1, "spin-ready\n", 11) != 11) return;
    while (native_ext_seconds_since(&start) < seconds) {
        for (i = 0; i < 1000000; i++) native_ext_counter++;
    }
}

static PyObject *native_ext_spin(PyObject *self, PyObject *args) {
    double seconds;
    (void)self;
    if (!PyArg_ParseTuple(args, "d", &seconds)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    native_ext_spin_loop(seconds);
    Py_END_ALLOW_THREADS
    native_ext_counter++;
    Py_RETURN_NONE;
}

/* The read that faults: its own frame, so the core's native stack names it. */
__attribute__((noinline)) static long native_ext_crash_now(volatile long *where) {
    long value = *where;
    native_ext_counter++;
    return value;
}

static PyObject *native_ext_crash(PyObject *self, PyObject *args) {
    long value;
    (void)self;
    (void)args;
    value = native_ext_crash_now(NULL);
    native_ext_counter++;
    return PyLong_FromLong(value);
}

__attribute__((noinline)) static void *native_ext_crash_thread(void *unused) {
    (void)unused;
    native_ext_counter += (unsigned long)native_ext_crash_now(NULL);
    return NULL;
}

/* crash_in_thread(): a thread of its own (no Python in it) crashes while the caller
 * waits for it without the GIL. */
static PyObject *native_ext_crash_in_thread(PyObject *self, PyObject *args) {
    pthread_t thread;
    (void)self;
    (void)args;
    Py_BEGIN_ALLOW_THREADS
    if (pthread_create(&thread, NULL, native_ext_crash_thread, NULL) == 0) pthread_join(thread, NULL);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyMethodDef native_ext_methods[] = {
    {"call_back", native_ext_call_back, METH_VARARGS, "call_back(f): calls f() from C"},
    {"spin", native_ext_spin, METH_VARARGS, "spin(seconds): spins in C without the GIL"},
    {"crash", native_ext_crash, METH_NOARGS, "crash(): reads through a NULL pointer (SIGSEGV)"},
    {"crash_in_thread", native_ext_crash_in_thread, METH_NOARGS, "crash_in_thread(): a C thread reads NULL"},
    {NULL, NULL, 0, NULL},
};

#if PY_MAJOR_VERSION >= 3
static struct PyModuleDef native_ext_module = {PyModuleDef_HEAD_INIT, "native_ext", NULL, -1, native_ext_methods};

PyMODINIT_FUNC PyInit_native_ext(void) {
    PyObject *module = PyModule_Create(&native_ext_module);
#ifdef Py_GIL_DISABLED
    /* A free-threaded build (3.13t+) would turn the GIL back on for the whole process on
     * importing a module that does not say it can run without it. */
    if (module != NULL && PyUnstable_Module_SetGIL(module, Py_MOD_GIL_NOT_USED) < 0) {
        Py_DECREF(module);
        return NULL;
    }
#endif
    return module;
}
#else
PyMODINIT_FUNC initnative_ext(void) { Py_InitModule("native_ext", native_ext_methods); }
#endif
