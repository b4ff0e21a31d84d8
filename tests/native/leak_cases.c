/*
 * leak_cases.c: native cases for the leak tools comparison (docs/lab.md, "Your code, and
 * pytest-memray"). NOT chatllm.cpp and not the test double: four tiny functions whose memory
 * behaviour is known in advance, loaded with ctypes as qasr loads libchatllm.
 *
 *   leak_malloc(n)  malloc + memset n bytes, never freed: a per-call leak of the live heap
 *   leak_mmap(n)    mmap + memset n bytes, never unmapped: a per-call leak outside the malloc heap
 *   cache_put(n)    a bounded cache of CACHE_SLOTS blocks of n bytes; the oldest is freed when
 *                   full: memory grows for CACHE_SLOTS calls, then stays flat (not a leak)
 *   clean_call(n)   malloc + memset + free: nothing kept
 *
 * Every block is stored through a volatile pointer so the compiler cannot drop the allocation.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CACHE_SLOTS 8

static void *volatile last_block;
static void *cache[CACHE_SLOTS];
static size_t cache_next;

void leak_malloc(size_t n) {
    char *p = malloc(n);
    if (p) memset(p, 1, n);
    last_block = p; /* the previous block is lost: leaked */
}

void leak_mmap(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    memset(p, 1, n);
    last_block = p; /* never unmapped */
}

void cache_put(size_t n) {
    free(cache[cache_next]);
    cache[cache_next] = malloc(n);
    if (cache[cache_next]) memset(cache[cache_next], 1, n);
    cache_next = (cache_next + 1) % CACHE_SLOTS;
}

void clean_call(size_t n) {
    char *p = malloc(n);
    if (p) memset(p, 1, n);
    last_block = p;
    free(p);
    last_block = NULL;
}
