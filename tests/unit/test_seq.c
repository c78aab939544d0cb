/* test_seq.c: seqs parse from and print to decimal exactly, at any size,
 * and anything that is not a plain non-negative decimal is refused. */
#include "../check.h"
#include "hash.h"
#include "trp.h"

static void parses_and_prints_small_and_huge(void)
{
    const char *cases[] = {"0",
                           "1",
                           "18446744073709551615",
                           "18446744073709551616",
                           "1000000000000000000000000000000",
                           "99999999999999999999999999999999999999999999999999"};
    mpz_t s;
    mpz_init(s);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        trp_err e;
        CHECK(trp_seq_parse(s, cases[i], "seq", &e) == TRP_OK);
        char buf[128];
        CHECK(trp_seq_strlen(s) <= sizeof buf);
        CHECK(trp_seq_strlen(s) >= strlen(cases[i]) + 1);
        CHECKF(strcmp(trp_seq_str(buf, sizeof buf, s), cases[i]) == 0, "%s", cases[i]);
    }
    CHECK(trp_seq_parse(s, "007", "seq", NULL) == TRP_OK && mpz_cmp_ui(s, 7) == 0);
    mpz_clear(s);
}

static void refuses_bad_input(void)
{
    const char *bad[] = {"", "-1", "+1", " 1", "1 ", "1x", "0x10", "1e5", "١"};
    mpz_t s;
    mpz_init_set_ui(s, 42);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        trp_err e = {0};
        CHECKF(trp_seq_parse(s, bad[i], "--from", &e) == TRP_EINVAL, "\"%s\"", bad[i]);
        CHECKF(strstr(e.msg, "--from") != NULL, "message \"%s\" names the argument", e.msg);
    }
    CHECK(trp_seq_parse(s, NULL, "seq", NULL) == TRP_EINVAL);
    CHECK(mpz_cmp_ui(s, 42) == 0); /* untouched on error */
    mpz_clear(s);
}

static void short_buffer_never_overflows(void)
{
    mpz_t s;
    mpz_init_set_str(s, "123456789012345678901234567890", 10);
    char buf[8];
    memset(buf, 'x', sizeof buf);
    trp_seq_str(buf, 5, s);
    CHECK(strcmp(buf, "1234") == 0);
    CHECK(buf[5] == 'x');
    mpz_clear(s);
}

static void fixed_field_round_trips(void)
{
    mpz_t s, t;
    mpz_inits(s, t, NULL);
    uint8_t f[SEQ_BYTES_MAX], g[SEQ_BYTES_MAX];
    mpz_set_str(s, "18446744073709551615", 10);
    CHECK(seq_to_field(s, f) == 0);
    CHECK(seq_field_inc(f) == 0);
    seq_from_field(t, f);
    mpz_add_ui(s, s, 1);
    CHECK(mpz_cmp(s, t) == 0);
    size_t n;
    const uint8_t *m = seq_field_min(f, &n);
    CHECK(n == 9 && m[0] == 1);
    CHECK(seq_field_add(g, f, 1000) == 0);
    seq_from_field(t, g);
    mpz_add_ui(s, s, 1000);
    CHECK(mpz_cmp(s, t) == 0);
    mpz_set_ui(s, 0);
    CHECK(seq_to_field(s, f) == 0);
    seq_field_min(f, &n);
    CHECK(n == 0);
    mpz_ui_pow_ui(s, 2, 512);
    CHECK(seq_to_field(s, f) == -1); /* beyond the format */
    mpz_sub_ui(s, s, 1);
    CHECK(seq_to_field(s, f) == 0);
    CHECK(seq_field_inc(f) == -1);
    mpz_clears(s, t, NULL);
}

int main(void)
{
    RUN(parses_and_prints_small_and_huge);
    RUN(refuses_bad_input);
    RUN(short_buffer_never_overflows);
    RUN(fixed_field_round_trips);
    return check_done();
}
