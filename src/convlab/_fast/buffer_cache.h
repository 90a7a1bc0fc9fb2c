/* A cache of large freed array buffers, to hand them out again.
 *
 * A training step allocates the same large arrays every time (layer outputs,
 * caches, gradients) and frees them before the next step.  The C library
 * returns blocks of more than a few hundred KiB to the operating system at
 * once (glibc's mmap threshold, macOS's "large" allocations), so every step
 * pays for mapping them again: one page fault per 4 KiB page touched, in
 * which the kernel also zeroes the page.  For a step of the book's small
 * network that is a sixth of its time.
 *
 * This file keeps such blocks instead, up to a limit on the bytes held, and
 * gives a cached block to the next request of about the same size (at least
 * the size asked for, at most an eighth more).  Small blocks go straight to
 * malloc and free.  Every block it hands out is 64-byte aligned (a cache
 * line, one AVX-512 register) and carries a small header in front with the
 * address malloc returned and the usable size, so realloc and free need not
 * be told the size.
 *
 * The functions are those of a NumPy memory handler (PyDataMemAllocator):
 * convlab._fast.buffers installs them for the arrays created inside
 * ``convlab.fast_layers.reuse_buffers()``.  One mutex, taken for a few
 * table operations per call, makes them safe from any thread.
 */
#ifndef CONVLAB_BUFFER_CACHE_H
#define CONVLAB_BUFFER_CACHE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CONVLAB_BUFFER_ALIGN 64
#define CONVLAB_BUFFER_MIN_CACHED ((size_t)256 * 1024) /* smaller blocks: plain malloc */
#define CONVLAB_BUFFER_SLOTS 256                       /* cached blocks at most */

/* The header in front of every block: 16 bytes just below the address handed out. */
typedef struct {
    void *raw;       /* what malloc returned */
    size_t capacity; /* usable bytes from the aligned address on */
} convlab_block_header;

static inline convlab_block_header *convlab_header_of(void *ptr) {
    return (convlab_block_header *)((char *)ptr - sizeof(convlab_block_header));
}

/* The cache: a table of blocks, oldest first, and what it holds. */
typedef struct {
    void *lock;                         /* a PyThread lock, made by buffers.pyx */
    void (*acquire)(void *lock);
    void (*release)(void *lock);
    void *blocks[CONVLAB_BUFFER_SLOTS];  /* aligned addresses */
    int count;
    size_t cached_bytes;
    size_t limit_bytes;                 /* hold at most this much */
    long long hits, misses;             /* requests served from the cache / by malloc */
} convlab_buffer_cache;

/* A fresh aligned block of at least `size` usable bytes (zeroed if `zero`), or NULL. */
static void *convlab_block_new(size_t size, int zero) {
    size_t need = size + sizeof(convlab_block_header) + CONVLAB_BUFFER_ALIGN;
    if (need < size) return NULL; /* overflow */
    void *raw = zero ? calloc(need, 1) : malloc(need);
    if (raw == NULL) return NULL;
    uintptr_t start = (uintptr_t)raw + sizeof(convlab_block_header);
    uintptr_t aligned = (start + CONVLAB_BUFFER_ALIGN - 1) & ~(uintptr_t)(CONVLAB_BUFFER_ALIGN - 1);
    convlab_block_header *h = convlab_header_of((void *)aligned);
    h->raw = raw;
    h->capacity = need - (aligned - (uintptr_t)raw);
    return (void *)aligned;
}

static void convlab_block_free(void *ptr) {
    if (ptr != NULL) free(convlab_header_of(ptr)->raw);
}

/* Remove and return a cached block of `size` to `size + size / 8` bytes (the
 * smallest such), or NULL.  Call with the lock held. */
static void *convlab_cache_take(convlab_buffer_cache *c, size_t size) {
    int best = -1;
    size_t best_capacity = 0, most = size + size / 8;
    for (int i = 0; i < c->count; i++) {
        size_t cap = convlab_header_of(c->blocks[i])->capacity;
        if (cap >= size && cap <= most && (best < 0 || cap < best_capacity)) {
            best = i;
            best_capacity = cap;
        }
    }
    if (best < 0) return NULL;
    void *ptr = c->blocks[best];
    memmove(&c->blocks[best], &c->blocks[best + 1], (size_t)(c->count - best - 1) * sizeof(void *));
    c->count--;
    c->cached_bytes -= best_capacity;
    return ptr;
}

/* Keep `ptr` for later, evicting the oldest blocks to stay within the limit;
 * returns the blocks to free (at most CONVLAB_BUFFER_SLOTS + 1) in `evicted`
 * and their number, so that free() runs after the lock is released. */
static int convlab_cache_put(convlab_buffer_cache *c, void *ptr, void **evicted) {
    size_t cap = convlab_header_of(ptr)->capacity;
    int n = 0;
    if (cap > c->limit_bytes) {
        evicted[n++] = ptr;
        return n;
    }
    while (c->count > 0 && (c->count == CONVLAB_BUFFER_SLOTS || c->cached_bytes + cap > c->limit_bytes)) {
        void *old = c->blocks[0];
        c->cached_bytes -= convlab_header_of(old)->capacity;
        memmove(&c->blocks[0], &c->blocks[1], (size_t)(c->count - 1) * sizeof(void *));
        c->count--;
        evicted[n++] = old;
    }
    c->blocks[c->count++] = ptr;
    c->cached_bytes += cap;
    return n;
}

/* Free every cached block; returns the bytes given back. */
static size_t convlab_cache_clear(convlab_buffer_cache *c) {
    size_t total = 0;
    for (;;) {
        void *ptr = NULL;
        c->acquire(c->lock);
        if (c->count > 0) {
            ptr = c->blocks[--c->count];
            c->cached_bytes -= convlab_header_of(ptr)->capacity;
            total += convlab_header_of(ptr)->capacity;
        }
        c->release(c->lock);
        if (ptr == NULL) return total;
        convlab_block_free(ptr);
    }
}

/* A block of at least `size` bytes, from the cache if one fits (zeroed if `zero`).
 * If the C library has no memory left, the cache gives back what it holds
 * and the request is tried once more. */
static void *convlab_cache_get(convlab_buffer_cache *c, size_t size, int zero) {
    if (size == 0) size = 1; /* NumPy may ask for nothing; give a valid block */
    if (size >= CONVLAB_BUFFER_MIN_CACHED) {
        c->acquire(c->lock);
        void *ptr = convlab_cache_take(c, size);
        if (ptr != NULL) c->hits++; else c->misses++;
        c->release(c->lock);
        if (ptr != NULL) {
            if (zero) memset(ptr, 0, size);
            return ptr;
        }
    }
    void *ptr = convlab_block_new(size, zero); /* calloc's pages come zeroed */
    if (ptr == NULL && c->count > 0) {
        convlab_cache_clear(c);
        ptr = convlab_block_new(size, zero);
    }
    return ptr;
}

static void *convlab_cache_malloc(void *ctx, size_t size) {
    return convlab_cache_get((convlab_buffer_cache *)ctx, size, 0);
}

static void *convlab_cache_calloc(void *ctx, size_t nelem, size_t elsize) {
    if (elsize != 0 && nelem > SIZE_MAX / elsize) return NULL;
    return convlab_cache_get((convlab_buffer_cache *)ctx, nelem * elsize, 1);
}

static void convlab_cache_free(void *ctx, void *ptr, size_t size) {
    convlab_buffer_cache *c = (convlab_buffer_cache *)ctx;
    (void)size; /* the header knows */
    if (ptr == NULL) return;
    if (convlab_header_of(ptr)->capacity < CONVLAB_BUFFER_MIN_CACHED) {
        convlab_block_free(ptr);
        return;
    }
    void *evicted[CONVLAB_BUFFER_SLOTS + 1];
    c->acquire(c->lock);
    int n = convlab_cache_put(c, ptr, evicted);
    c->release(c->lock);
    for (int i = 0; i < n; i++) convlab_block_free(evicted[i]);
}

static void *convlab_cache_realloc(void *ctx, void *ptr, size_t new_size) {
    if (ptr == NULL) return convlab_cache_malloc(ctx, new_size);
    size_t cap = convlab_header_of(ptr)->capacity;
    if (new_size <= cap && new_size >= cap / 2) return ptr; /* fits, and wastes at most half */
    void *fresh = convlab_cache_malloc(ctx, new_size);
    if (fresh == NULL) return NULL;
    memcpy(fresh, ptr, new_size < cap ? new_size : cap);
    convlab_cache_free(ctx, ptr, cap);
    return fresh;
}

#endif /* CONVLAB_BUFFER_CACHE_H */
