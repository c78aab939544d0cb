/*
 * idmap.h: find a table row by a 64-bit id without scanning the table
 * (internal; used for Raft client sessions, the wire's client slots and
 * the addresses trp-node answers clients at).
 *
 * The one idea: an open-addressing index of row numbers, at least four
 * slots per row the table may hold. An entry says "this row had this id
 * when it was put"; rows that change id or move leave their old entries
 * behind, so a lookup (idmap_find) walks the probe chain and checks each
 * candidate row's id, as the owner's id_of tells it (0: not in use). Once
 * half the slots are used, idmap_add makes the index again from the live
 * rows, which keeps chains short whatever the churn.
 */
#ifndef IDMAP_H
#define IDMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IDMAP_NONE UINT32_MAX

typedef struct idmap {
    uint32_t *slot; /* row numbers, IDMAP_NONE = free */
    size_t mask;    /* slots - 1 */
    size_t used;
} idmap;

/* Room for an index of a table of at most rows_max rows; false when out
 * of memory. */
static inline bool idmap_init(idmap *m, size_t rows_max)
{
    size_t slots = 16;
    while (slots < 4 * rows_max)
        slots *= 2;
    if (!(m->slot = malloc(slots * sizeof *m->slot)))
        return false;
    m->mask = slots - 1;
    memset(m->slot, 0xff, slots * sizeof *m->slot);
    m->used = 0;
    return true;
}

static inline void idmap_free(idmap *m)
{
    free(m->slot);
    m->slot = NULL;
}

static inline void idmap_clear(idmap *m)
{
    memset(m->slot, 0xff, (m->mask + 1) * sizeof *m->slot);
    m->used = 0;
}

/* The first slot of id's probe chain; the chain goes on with idmap_next
 * until a slot holds IDMAP_NONE. Ids may be random or small counters. */
static inline size_t idmap_first(const idmap *m, uint64_t id)
{
    uint64_t h = id * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32 ^ h) & m->mask;
}

static inline size_t idmap_next(const idmap *m, size_t k)
{
    return (k + 1) & m->mask;
}

static inline void idmap_put(idmap *m, uint64_t id, uint32_t row)
{
    size_t k = idmap_first(m, id);
    while (m->slot[k] != IDMAP_NONE)
        k = idmap_next(m, k);
    m->slot[k] = row;
    m->used++;
}

/* The row of [0, end) whose id (id_of, as for idmap_add) is id, or
 * IDMAP_NONE: walks id's probe chain past entries rows have outgrown. */
static inline uint32_t idmap_find(const idmap *m, uint64_t id, const void *table, size_t end,
                                  uint64_t (*id_of)(const void *table, size_t i))
{
    if (!m->slot)
        return IDMAP_NONE;
    for (size_t k = idmap_first(m, id); m->slot[k] != IDMAP_NONE; k = idmap_next(m, k)) {
        uint32_t row = m->slot[k];
        if (row < end && id_of(table, row) == id)
            return row;
    }
    return IDMAP_NONE;
}

/* Put row (whose id is id) in the index of rows [first, end) of a table;
 * id_of(table, i) is row i's id, 0 for a row not in use. Once half the
 * slots are used, the index is made again from the rows first. */
static inline void idmap_add(idmap *m, uint64_t id, uint32_t row, const void *table, size_t first,
                             size_t end, uint64_t (*id_of)(const void *table, size_t i))
{
    if (2 * (m->used + 1) > m->mask + 1) {
        memset(m->slot, 0xff, (m->mask + 1) * sizeof *m->slot);
        m->used = 0;
        for (size_t i = first; i < end; i++) {
            uint64_t other = i == row ? 0 : id_of(table, i);
            if (other)
                idmap_put(m, other, (uint32_t)i);
        }
    }
    idmap_put(m, id, row);
}

#endif
