/*
 * fuzz_client.c: libFuzzer target for the client protocol decoder
 * (trp_cmsg_decode, lib/client_codec.c); built by `make fuzz`.
 *
 * The one idea: whatever the decoder accepts must re-encode to exactly the
 * same bytes (one encoding per message), and anything else it must refuse
 * without crashing, reading out of bounds or allocating without bound.
 */
#include "trp_client.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trp_cmsg m;
    trp_cmsg_init(&m);
    if (trp_cmsg_decode(data, size, &m, NULL) == TRP_OK) {
        trp_cbuf b = {0};
        if (trp_cmsg_encode(&m, &b) == TRP_OK && (b.len != size || memcmp(b.p, data, size) != 0))
            abort(); /* accepted bytes that do not round-trip */
        trp_cbuf_free(&b);
    }
    trp_cmsg_clear(&m);
    return 0;
}
