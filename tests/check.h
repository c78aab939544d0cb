/*
 * check.h: the tiny test harness every unit-test program uses.
 *
 * Each CHECK that fails prints "FAIL <test>: file:line: expression" and
 * marks the current test failed; RUN prints "PASS <test>" for a test whose
 * checks all held. tests/run.sh counts these lines across the suite, so a
 * program must print exactly one PASS or FAIL line per test it runs.
 * check_done() returns the exit status (1 if anything failed).
 */
#ifndef TRP_CHECK_H
#define TRP_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failed_now;
static int check_passed_total, check_failed_total;
static const char *check_current = "";

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            if (!check_failed_now)                                                            \
                printf("FAIL %s: %s:%d: %s\n", check_current, __FILE__, __LINE__, #cond);     \
            check_failed_now = 1;                                                             \
        }                                                                                     \
    } while (0)

/* CHECK with a printf-style explanation shown on failure. */
#define CHECKF(cond, ...)                                                                     \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            if (!check_failed_now) {                                                          \
                printf("FAIL %s: %s:%d: %s: ", check_current, __FILE__, __LINE__, #cond);     \
                printf(__VA_ARGS__);                                                          \
                printf("\n");                                                                 \
            }                                                                                 \
            check_failed_now = 1;                                                             \
        }                                                                                     \
    } while (0)

/* Stop the current test function on a failed check that later code needs. */
#define REQUIRE(cond)                                                                         \
    do {                                                                                      \
        CHECK(cond);                                                                          \
        if (check_failed_now)                                                                 \
            return;                                                                           \
    } while (0)

#define RUN(fn)                                                                               \
    do {                                                                                      \
        check_current = #fn;                                                                  \
        check_failed_now = 0;                                                                 \
        fn();                                                                                 \
        if (check_failed_now)                                                                 \
            check_failed_total++;                                                             \
        else {                                                                                \
            check_passed_total++;                                                             \
            printf("PASS %s\n", #fn);                                                         \
        }                                                                                     \
        fflush(stdout);                                                                       \
    } while (0)

static inline int check_done(void) { return check_failed_total ? 1 : 0; }

#endif
