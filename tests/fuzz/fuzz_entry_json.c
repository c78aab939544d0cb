/*
 * fuzz_entry_json.c: libFuzzer target for the JSON form of an entry
 * (cli_out_entry_json), whose "data" member comes from trp's own strict
 * RFC 8259 reader.
 *
 * The one idea: whatever the payload, the output is one line of JSON that
 * cJSON reads; "text" (or "base64") gives the payload back byte for byte;
 * and "data", when present, is a value cJSON reads too.
 */
#include "cli.h"
#include "trp.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0 && (fd = memfd_create("fuzz_entry_json", 0)) < 0)
        abort();
    if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
        abort();
    cli_out o;
    if (cli_out_init(&o, fd, 1 << 16) != 0)
        abort();
    trp_entry e;
    trp_entry_init(&e);
    e.type = TRP_ENTRY_DATA;
    e.payload = data;
    e.len = size;
    cli_out_entry_json(&o, &e, "0");
    if (cli_out_flush(&o) != 0)
        abort();
    cli_out_free(&o);
    trp_entry_clear(&e);
    off_t n = lseek(fd, 0, SEEK_CUR);
    char *line = malloc((size_t)n + 1);
    if (!line || pread(fd, line, (size_t)n, 0) != n)
        abort();
    line[n] = '\0';
    if (n < 2 || line[n - 1] != '\n' || memchr(line, '\n', (size_t)n - 1))
        abort(); /* one line */
    cJSON *v = cJSON_ParseWithLength(line, (size_t)n);
    if (!v)
        abort();
    const cJSON *text = cJSON_GetObjectItem(v, "text"), *b64 = cJSON_GetObjectItem(v, "base64");
    if (!text == !b64)
        abort(); /* exactly one of them */
    /* text has the payload unless it holds a NUL (cJSON's C strings end there) */
    if (text && !memchr(data, 0, size) &&
        (strlen(text->valuestring) != size || memcmp(text->valuestring, data, size) != 0))
        abort();
    const cJSON *d = cJSON_GetObjectItem(v, "data");
    if (d && !text)
        abort(); /* data only beside text */
    cJSON_Delete(v);
    free(line);
    return 0;
}
