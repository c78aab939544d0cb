/* test_format.c: man/trp-log.5 carries exactly the example the code makes
 * today (the bytes of a three-entry log and each entry's hash), and the
 * format's fixed numbers agree with the page's tables. */
#include "../check.h"
#include "log_example.h"
#include "logtest.h"

static char *read_page(void)
{
    const char *paths[] = {"man/trp-log.5", "../man/trp-log.5", "../../man/trp-log.5"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        size_t len;
        uint8_t *b = lt_slurp(paths[i], &len);
        if (b) {
            char *s = realloc(b, len + 1);
            s[len] = '\0';
            return s;
        }
    }
    return NULL;
}

static void page_example_matches_the_code(void)
{
    char *page = read_page();
    REQUIRE(page);
    const char *begin = ".\\\" BEGIN GENERATED EXAMPLE\n", *end = ".\\\" END GENERATED EXAMPLE\n";
    char *a = strstr(page, begin), *b = strstr(page, end);
    REQUIRE(a && b && b > a);
    a += strlen(begin);
    *b = '\0';
    char *want = log_example_text(lt_dir("example"));
    REQUIRE(want);
    if (strcmp(a, want) != 0) {
        /* show the first differing line */
        const char *x = a, *y = want;
        while (*x && *x == *y)
            x++, y++;
        while (x > a && x[-1] != '\n')
            x--, y--;
        printf("# page: %.80s\n# code: %.80s\n", x, y);
        printf("# refresh: build/t/log_example /tmp/x and paste between the markers\n");
    }
    CHECK(strcmp(a, want) == 0);
    /* and the hashes are in it, with the chain visible */
    CHECK(strstr(a, "seq 0  \"a\"  ") && strstr(a, "seq 2  \"c\"  "));
    free(want);
    free(page);
}

static void page_names_the_fixed_numbers(void)
{
    char *page = read_page();
    REQUIRE(page);
    CHECK(strstr(page, "0xE3069283") != NULL);
    CHECK(trp_crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(strstr(page, "\"trp-entry-v1\"") != NULL);
    CHECK(strstr(page, "124\t4\theader_crc\tu32 CRC32C of bytes 0 to 123") != NULL);
    CHECK(strstr(page, "8\t8\tseq_offset") != NULL);
    CHECK(strstr(page, "\"TRPSEG\" 00 00") && strstr(page, "\"TRPCMT\" 00 00") &&
          strstr(page, "\"TRPMETA\" 00"));
    free(page);
}

int main(void)
{
    RUN(page_example_matches_the_code);
    RUN(page_names_the_fixed_numbers);
    lt_cleanup();
    return check_done();
}
