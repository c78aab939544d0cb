/*
 * fuzz_raft_msg.c: libFuzzer target for the Raft message decoder.
 *
 * Build (not part of the default build):
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilib \
 *     tests/fuzz/fuzz_raft_msg.c lib/raft_codec.c lib/base.c -lgmp -o fuzz_raft_msg
 * The one idea: whatever the decoder accepts must re-encode to the same
 * bytes; anything else it must refuse without crashing. The CRC is
 * recomputed over the input first (FUZZ_FIX_CRC) so the fuzzer reaches the
 * structural checks instead of stopping at the checksum.
 */
#include "trp_raft.h"

#include <stdlib.h>
#include <string.h>

static uint32_t crc32c_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return c ^ 0xffffffffu;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size + 4);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    uint32_t c = crc32c_bitwise(buf, size);
    buf[size] = (uint8_t)(c >> 24);
    buf[size + 1] = (uint8_t)(c >> 16);
    buf[size + 2] = (uint8_t)(c >> 8);
    buf[size + 3] = (uint8_t)c;
    trp_raft_msg m;
    trp_raft_msg_init(&m);
    if (trp_raft_msg_decode(buf, size + 4, &m, NULL) == 0) {
        uint8_t *out;
        size_t len;
        if (trp_raft_msg_encode(&m, &out, &len, NULL) == 0) {
            if (len != size + 4 || memcmp(out, buf, len) != 0)
                abort(); /* accepted but not canonical */
            free(out);
        }
    }
    trp_raft_msg_clear(&m);
    free(buf);
    return 0;
}
