#include "pyspy/cli/option_values.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

namespace pyspy {

namespace {

// The choices travel in the name of a validator of their own: "choices:a,b,c" (a name
// CLI11 never shows). Its description, "{a,b,c}", is what --help shows after the type.
constexpr std::string_view kChoicesPrefix = "choices:";

CLI::Validator choicesValidator(const std::vector<std::string>& choices, bool check) {
    const std::string list = fmt::format("{}", fmt::join(choices, ","));
    auto accepts = [choices, list, check](std::string& value) -> std::string {
        if (!check || std::find(choices.begin(), choices.end(), value) != choices.end()) return {};
        return fmt::format("{} not in {{{}}}", value, list);
    };
    return {accepts, "{" + list + "}", std::string(kChoicesPrefix) + list};
}

}  // namespace

CLI::Option* restrictToChoices(CLI::Option* option, const std::vector<std::string>& choices) {
    return option->check(choicesValidator(choices, true));
}

CLI::Option* offerChoices(CLI::Option* option, const std::vector<std::string>& choices) {
    return option->check(choicesValidator(choices, false));
}

std::vector<std::string> optionChoices(CLI::Option& option) {
    std::vector<std::string> choices;
    for (int index = 0;; ++index) {
        const CLI::Validator* validator = nullptr;
        try {
            validator = option.get_validator(index);
        } catch (const CLI::OptionNotFound&) {
            break;
        }
        const std::string& name = validator->get_name();
        if (!name.starts_with(kChoicesPrefix)) continue;
        std::string_view list = std::string_view(name).substr(kChoicesPrefix.size());
        while (!list.empty()) {
            const auto comma = list.find(',');
            choices.emplace_back(list.substr(0, comma));
            list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        }
        break;
    }
    return choices;
}

}  // namespace pyspy
