#!/usr/bin/env node
// Usage: validate_speedscope.js FILE...
// Validates speedscope files against the JSON schema that the speedscope npm package
// ships (dist/release/file-format-schema.json), with ajv; then checks what the schema
// cannot say but speedscope's importer relies on: frame indices in range, one weight
// per sample, activeProfileIndex in range. Exit 1 (errors printed) if any file fails.
'use strict';

const fs = require('fs');
const path = require('path');
const Ajv = require('ajv');

const schemaPath = path.join(__dirname, 'node_modules', 'speedscope', 'dist', 'release', 'file-format-schema.json');
const schema = JSON.parse(fs.readFileSync(schemaPath, 'utf8'));
const ajv = new Ajv({allErrors: true});
const validate = ajv.compile(schema);

function semanticErrors(doc) {
  const errors = [];
  const frameCount = doc.shared.frames.length;
  doc.profiles.forEach((profile, p) => {
    if (profile.type !== 'sampled') return;
    if (profile.samples.length !== profile.weights.length) {
      errors.push(`profiles[${p}]: ${profile.samples.length} samples but ${profile.weights.length} weights`);
    }
    profile.samples.forEach((stack, s) => {
      for (const index of stack) {
        if (!Number.isInteger(index) || index < 0 || index >= frameCount) {
          errors.push(`profiles[${p}].samples[${s}]: frame index ${index} not in [0, ${frameCount})`);
        }
      }
    });
    profile.weights.forEach((weight, w) => {
      if (!(weight >= 0)) errors.push(`profiles[${p}].weights[${w}]: ${weight} is not a weight`);
    });
    const total = profile.weights.reduce((a, b) => a + b, 0);
    if (profile.endValue - profile.startValue !== total) {
      errors.push(`profiles[${p}]: endValue - startValue is ${profile.endValue - profile.startValue}, weights add up to ${total}`);
    }
  });
  if ('activeProfileIndex' in doc && doc.profiles.length > 0 &&
      !(Number.isInteger(doc.activeProfileIndex) && doc.activeProfileIndex >= 0 && doc.activeProfileIndex < doc.profiles.length)) {
    errors.push(`activeProfileIndex ${doc.activeProfileIndex} is not a profile`);
  }
  return errors;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: validate_speedscope.js FILE...');
  process.exit(2);
}
const version = JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', 'speedscope', 'package.json'), 'utf8')).version;
let failed = 0;
for (const file of files) {
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    console.error(`FAIL ${file}: not JSON: ${e.message}`);
    failed++;
    continue;
  }
  if (!validate(doc)) {
    console.error(`FAIL ${file}: does not match the speedscope ${version} schema:`);
    for (const error of validate.errors) console.error(`  ${error.instancePath || '/'} ${error.message} ${JSON.stringify(error.params)}`);
    failed++;
    continue;
  }
  const errors = semanticErrors(doc);
  if (errors.length > 0) {
    console.error(`FAIL ${file}:`);
    for (const error of errors) console.error(`  ${error}`);
    failed++;
    continue;
  }
  console.log(`ok ${file} (speedscope ${version} schema, ${doc.profiles.length} profiles, ${doc.shared.frames.length} frames)`);
}
process.exit(failed > 0 ? 1 : 0);
