/*
 * seq.c: sequence numbers as decimal text.
 *
 * The one idea: a seq is an unbounded non-negative integer (GMP mpz_t), and
 * its only outside form is plain decimal, so parsing is strict: digits only,
 * no sign, no spaces, no "0x" (leading zeros are harmless and accepted).
 */
#include "trp_log.h"

#include <string.h>

int trp_seq_parse(mpz_t out, const char *text, const char *what, trp_err *err)
{
    if (!what)
        what = "seq";
    if (!text || !*text)
        return trp_err_set(err, TRP_EINVAL, "%s: empty; expected a non-negative decimal integer",
                           what);
    for (const char *p = text; *p; p++)
        if (*p < '0' || *p > '9')
            return trp_err_set(err, TRP_EINVAL,
                               "%s: \"%.80s\" is not a non-negative decimal integer", what, text);
    if (mpz_set_str(out, text, 10) != 0)
        return trp_err_set(err, TRP_EINVAL, "%s: \"%.80s\" is not a decimal integer", what, text);
    return TRP_OK;
}

size_t trp_seq_strlen(const mpz_t seq)
{
    return mpz_sizeinbase(seq, 10) + 2;
}

char *trp_seq_str(char *buf, size_t size, const mpz_t seq)
{
    if (size == 0)
        return buf;
    if (size >= trp_seq_strlen(seq)) {
        mpz_get_str(buf, 10, seq);
        return buf;
    }
    /* Too small: never overflow; give what the caller can hold. */
    char *tmp = mpz_get_str(NULL, 10, seq);
    size_t n = strlen(tmp);
    if (n >= size)
        n = size - 1;
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    void (*freefn)(void *, size_t);
    mp_get_memory_functions(NULL, NULL, &freefn);
    freefn(tmp, strlen(tmp) + 1);
    return buf;
}
