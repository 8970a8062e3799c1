/* Options and their messages, the same in every subcommand: see opts.h. */
#include "cli/opts.h"

#include "cli/common.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts) {
    opterr = 0;
    return getopt_long(argc, argv, shortopts, longopts, NULL);
}

int cli_option_error(int c, char **argv) {
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    /* A long option is named by what was typed (without "=value"); a short
     * one by its letter, which may sit inside a cluster like "-xv". */
    int len = (int)strcspn(arg, "=");
    bool is_long = strncmp(arg, "--", 2) == 0;
    if (c == ':') {
        if (is_long)
            cli_error("option '%.*s' needs a value", len, arg);
        else
            cli_error("option '-%c' needs a value", optopt);
    } else if (is_long || !optopt) {
        cli_error("unknown option '%.*s' (see --help)", len, arg);
    } else {
        cli_error("unknown option '-%c' (see --help)", optopt);
    }
    return EXIT_USAGE;
}

int cli_option_default(int c, char **argv, const char *usage) {
    if (c != 'h') return cli_option_error(c, argv);
    fputs(usage, stdout);
    return 0;
}

int cli_bad_value(const char *opt, const char *val, const char *want) {
    cli_error("%s: '%s' is not %s", opt, val, want);
    return EXIT_USAGE;
}

int cli_opt_count(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out) {
    if (parse_count(arg, min, max, out) == 0) return 0;
    char want[96];
    if (max < UINT32_MAX)
        snprintf(want, sizeof want, "a number from %llu to %llu", (unsigned long long)min,
                 (unsigned long long)max);
    else if (min)
        snprintf(want, sizeof want, "a number of at least %llu", (unsigned long long)min);
    else
        snprintf(want, sizeof want, "a number");
    cli_bad_value(opt, arg, want);
    return -1;
}

int cli_opt_size(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out) {
    uint64_t v;
    if (parse_size(arg, &v) == 0 && v >= min && v <= max) {
        *out = v;
        return 0;
    }
    char want[96], lo[32], hi[32];
    cli_size_text(min, lo, sizeof lo);
    cli_size_text(max, hi, sizeof hi);
    if (max != UINT64_MAX)
        snprintf(want, sizeof want, "a size from %s to %s", lo, hi);
    else if (min)
        snprintf(want, sizeof want, "a size of at least %s", lo);
    else
        snprintf(want, sizeof want, "a size (such as 256K or 1G)");
    cli_bad_value(opt, arg, want);
    return -1;
}

int cli_opt_choice(const char *opt, const char *arg, const char *const *choices) {
    size_t n = 0;
    for (; choices[n]; n++)
        if (!strcmp(arg, choices[n])) return (int)n;
    /* "a, b or c" */
    char want[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof want; i++)
        len += (size_t)snprintf(want + len, sizeof want - len, "%s%s",
                                i == 0       ? ""
                                : i + 1 == n ? " or "
                                             : ", ",
                                choices[i]);
    cli_bad_value(opt, arg, want);
    return -1;
}

int cli_parse_memory(const char *arg, uint64_t min, uint64_t *out) {
    return cli_opt_size("--memory", arg, min, UINT64_MAX, out);
}

int cli_usage_error(const char *help, const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cli_error("%s (see '%s --help')", text, help);
    return EXIT_USAGE;
}
