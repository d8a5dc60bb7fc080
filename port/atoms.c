/*
 * The atom budget (see atoms.h). Two sets of UTF-8 names in open-addressing hash
 * tables: known (from Erlang; at most ATOMS_KNOWN_MAX names, then it stops
 * learning, which can only make the budget stricter) and sent (new names already
 * charged, at most the budget). Names are copied; the tables only grow.
 */
#include "atoms.h"

#include <string.h>

#include "memory.h"

/* Names learned from Erlang before the set stops growing. */
#define ATOMS_KNOWN_MAX 65536

/* Longest atom name in UTF-8 bytes (255 characters of up to 4 bytes). */
#define ATOMS_MAX_BYTES (255 * 4)

typedef struct {
    char *name; /* owned; NULL: free slot */
    size_t len;
    uint32_t hash;
} slot_t;

typedef struct {
    slot_t *slots;
    size_t cap; /* a power of two */
    size_t count;
} nameset_t;

static nameset_t g_known;
static nameset_t g_sent;
static int64_t g_remaining = -1;

/* Atoms every node has, and that the port writes itself. */
static const char *const g_seed[] = {"true",     "false",        "none",  "ok",
                                     "error",    "undefined",    "nil",   "nan",
                                     "infinity", "neg_infinity", "py_ref"};

static uint32_t hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    return h;
}

static slot_t *find(const nameset_t *set, const char *s, size_t n, uint32_t h)
{
    if (set->cap == 0) {
        return NULL;
    }
    for (size_t i = h & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        slot_t *slot = &set->slots[i];
        if (slot->name == NULL) {
            return slot;
        }
        if (slot->hash == h && slot->len == n && memcmp(slot->name, s, n) == 0) {
            return slot;
        }
    }
}

static void insert(nameset_t *set, const char *s, size_t n, uint32_t h);

static void grow(nameset_t *set)
{
    nameset_t bigger = {mem_calloc(set->cap ? 2 * set->cap : 64, sizeof(slot_t)),
                        set->cap ? 2 * set->cap : 64, 0};
    for (size_t i = 0; i < set->cap; i++) {
        slot_t *old = &set->slots[i];
        if (old->name != NULL) {
            slot_t *slot = find(&bigger, old->name, old->len, old->hash);
            *slot = *old;
            bigger.count++;
        }
    }
    mem_free(set->slots);
    *set = bigger;
}

static void insert(nameset_t *set, const char *s, size_t n, uint32_t h)
{
    if (2 * (set->count + 1) > set->cap) {
        grow(set);
    }
    slot_t *slot = find(set, s, n, h);
    if (slot->name == NULL) {
        slot->name = mem_dup(s, n);
        slot->len = n;
        slot->hash = h;
        set->count++;
    }
}

static int contains(const nameset_t *set, const char *s, size_t n, uint32_t h)
{
    const slot_t *slot = find(set, s, n, h);
    return slot != NULL && slot->name != NULL;
}

/* The UTF-8 form of a name: itself, or converted from Latin-1 into out. */
static const char *utf8(const char *name, size_t *n, int latin1, char *out)
{
    if (!latin1) {
        return name;
    }
    size_t o = 0;
    for (size_t i = 0; i < *n && o + 2 <= ATOMS_MAX_BYTES; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x80) {
            out[o++] = (char)c;
        } else {
            out[o++] = (char)(0xc0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3f));
        }
    }
    *n = o;
    return out;
}

void atoms_set_budget(int64_t remaining)
{
    if (g_known.cap == 0) {
        for (size_t i = 0; i < sizeof g_seed / sizeof g_seed[0]; i++) {
            size_t n = strlen(g_seed[i]);
            insert(&g_known, g_seed[i], n, hash(g_seed[i], n));
        }
    }
    g_remaining = remaining;
}

int atoms_limited(void)
{
    return g_remaining >= 0;
}

int atoms_known(void *ctx, const char *name, size_t n, int latin1)
{
    (void)ctx;
    char buf[ATOMS_MAX_BYTES];
    if (g_remaining < 0 || g_known.count >= ATOMS_KNOWN_MAX) {
        return 0;
    }
    const char *s = utf8(name, &n, latin1, buf);
    insert(&g_known, s, n, hash(s, n));
    return 0;
}

int atoms_use(void *ctx, const char *name, size_t n, int latin1)
{
    (void)ctx;
    if (g_remaining < 0) {
        return 0;
    }
    char buf[ATOMS_MAX_BYTES];
    const char *s = utf8(name, &n, latin1, buf);
    uint32_t h = hash(s, n);
    if (contains(&g_known, s, n, h) || contains(&g_sent, s, n, h)) {
        return 0;
    }
    if (g_remaining == 0) {
        return -1;
    }
    g_remaining--;
    insert(&g_sent, s, n, h);
    return 0;
}
