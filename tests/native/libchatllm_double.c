/*
 * libchatllm_double.c -- a TEST DOUBLE of chatllm.cpp's libchatllm C ABI.
 *
 * This is NOT the engine.  It loads no weights and recognises no speech.  It exists so that
 * qasr's ctypes binding and the leak lab's detectors can be exercised in CI, where no real
 * libchatllm.so exists.  It exports the subset of bindings/libchatllm.h that qasr calls, with
 * the same signatures, and behaves in the few ways qasr relies on:
 *
 *   - a model file is accepted when it starts with "ggmm" and its model_type (the i32 at the
 *     u32 offset stored at byte 8) is Qwen3-ASR or Qwen3-ForcedAligner;
 *   - ASR turns print chunks "language", " English", "<asr_text>", then canned words, and call
 *     f_end twice (upstream does);
 *   - aligner turns print one JSON chunk of evenly spread 80 ms-binned word timestamps.
 *
 * Everything else is injected through QASR_DOUBLE_* environment variables, read with getenv()
 * at the moment of each call so a test can change them between calls, or compiled in as
 * defaults (-DQASR_DOUBLE_DEFAULTS).  See README.md.
 *
 * Written from the header, not from upstream's implementation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the ABI (same declarations as bindings/libchatllm.h; that header is not available in CI) */

enum { PRINT_CHAT_CHUNK = 0, PRINTLN_META = 1, PRINTLN_ERROR = 2, PRINTLN_MODEL_INFO = 13 };

typedef void (*f_chatllm_print)(void *user_data, int print_type, const char *utf8_str);
typedef void (*f_chatllm_end)(void *user_data);

struct chatllm_obj;

#define EXPORT __attribute__((visibility("default")))

EXPORT void chatllm_append_init_param(const char *utf8_str);
EXPORT int chatllm_init(void);
EXPORT struct chatllm_obj *chatllm_create(void);
EXPORT int chatllm_destroy(struct chatllm_obj *obj);
EXPORT void chatllm_append_param(struct chatllm_obj *obj, const char *utf8_str);
EXPORT int chatllm_start(struct chatllm_obj *obj, f_chatllm_print f_print, f_chatllm_end f_end,
                         void *user_data);
EXPORT void chatllm_set_gen_max_tokens(struct chatllm_obj *obj, int gen_max_tokens);
EXPORT void chatllm_restart(struct chatllm_obj *obj, const char *utf8_sys_prompt);
EXPORT int chatllm_set_ai_prefix(struct chatllm_obj *obj, const char *utf8_str);
EXPORT void chatllm_multimedia_msg_prepare(struct chatllm_obj *obj);
EXPORT int chatllm_multimedia_msg_append(struct chatllm_obj *obj, const char *type, const char *utf8_str);
EXPORT int chatllm_get_cursor(struct chatllm_obj *obj);
EXPORT int chatllm_user_input(struct chatllm_obj *obj, const char *utf8_str);
EXPORT int chatllm_user_input_multimedia_msg(struct chatllm_obj *obj);
EXPORT void chatllm_abort_generation(struct chatllm_obj *obj);
EXPORT void chatllm_show_statistics(struct chatllm_obj *obj);

/* Extras of the double only: so code and tests can tell it apart from the real engine. */
EXPORT const char *qasr_double_identity(void);
EXPORT int qasr_double_init_count(void);

/* ---- constants */

#define MODEL_TYPE_QWEN3_ASR 0x1000010F
#define MODEL_TYPE_QWEN3_FORCED_ALIGNER 0x04000002
#define DEFAULT_CONTEXT_LENGTH 65536
#define FAKE_PARAM_NUM 123456
#define ALIGN_BIN_MS 80
#define DEFAULT_TEXT "hello world from the test double"
#define DEFAULT_LANGUAGE "English"

enum purpose { PURPOSE_NONE = 0, PURPOSE_ASR, PURPOSE_ALIGNER };

/* ---- small utilities */

/* A growable vector of heap strings: argv words, init words, output chunks, aligner units. */
struct strv {
    char **v;
    size_t n, cap;
};

static int strv_push_n(struct strv *sv, const char *s, size_t len)
{
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 8;
        char **v = realloc(sv->v, cap * sizeof *v);
        if (!v) return -1;
        sv->v = v;
        sv->cap = cap;
    }
    char *copy = strndup(s, len);
    if (!copy) return -1;
    sv->v[sv->n++] = copy;
    return 0;
}

static int strv_push(struct strv *sv, const char *s) { return strv_push_n(sv, s, strlen(s)); }

static void strv_free(struct strv *sv)
{
    for (size_t i = 0; i < sv->n; i++) free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = sv->cap = 0;
}

/* A growable byte buffer, always NUL-terminated once anything was appended. */
struct strbuf {
    char *s;
    size_t len, cap;
};

static void sb_append(struct strbuf *sb, const char *s, size_t n)
{
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 64;
        while (cap < sb->len + n + 1) cap *= 2;
        char *p = realloc(sb->s, cap);
        if (!p) return; /* out of memory in a test double: drop the text, never crash */
        sb->s = p;
        sb->cap = cap;
    }
    memcpy(sb->s + sb->len, s, n);
    sb->len += n;
    sb->s[sb->len] = '\0';
}

static void sb_puts(struct strbuf *sb, const char *s) { sb_append(sb, s, strlen(s)); }

static void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_append(sb, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* One UTF-8 code point; invalid bytes come back one at a time as themselves. */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 0;
    if (len == 0) {
        *cp = s[0];
        return 1;
    }
    uint32_t c = len == 1 ? s[0] : s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = s[0];
            return 1;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    *cp = c;
    return len;
}

/* A JSON string: escape quotes, backslashes and control bytes; invalid UTF-8 becomes U+FFFD. */
static void sb_json_string(struct strbuf *sb, const char *s)
{
    sb_puts(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        uint32_t c;
        size_t len = utf8_next(p, &c);
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_append(sb, esc, 2);
        } else if (c < 0x20) {
            sb_printf(sb, "\\u%04x", (unsigned)c);
        } else if (len == 1 && c >= 0x80) {
            sb_puts(sb, "\\ufffd");
        } else {
            sb_append(sb, (const char *)p, len);
        }
        p += len;
    }
    sb_puts(sb, "\"");
}

/* stderr without stdio: used right before abort(), where buffered output would be lost. */
static void say(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int is_blank(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* ---- injected behaviour: environment knobs, read at the moment of each call */

/*
 * Compiled-in defaults, for a build that must behave differently from another one under the same
 * environment (the lab's engine matrix runs two "engines" side by side):
 *   cc -DQASR_DOUBLE_DEFAULTS='"QASR_DOUBLE_ABORT_IN_DESTROY=1 QASR_DOUBLE_LEAK_RESTART=65536"' ...
 * Space-separated NAME=VALUE words (values without spaces). The environment still wins.
 */
#ifndef QASR_DOUBLE_DEFAULTS
#define QASR_DOUBLE_DEFAULTS ""
#endif

static pthread_once_t g_defaults_once = PTHREAD_ONCE_INIT;
static char *g_defaults; /* a writable copy: words split in place into NAME\0VALUE\0 pairs */
static size_t g_defaults_len;

static void parse_defaults(void)
{
    g_defaults_len = strlen(QASR_DOUBLE_DEFAULTS);
    g_defaults = g_defaults_len ? strdup(QASR_DOUBLE_DEFAULTS) : NULL;
    for (size_t i = 0; g_defaults && i < g_defaults_len; i++)
        if (g_defaults[i] == ' ' || g_defaults[i] == '=') g_defaults[i] = '\0';
}

/* The knob's value: the environment's, else the compiled-in default, else NULL. */
static const char *knob(const char *name)
{
    const char *v = getenv(name);
    if (v) return v;
    pthread_once(&g_defaults_once, parse_defaults);
    for (size_t i = 0; g_defaults && i < g_defaults_len;) {
        const char *key = g_defaults + i;
        size_t klen = strlen(key);
        if (!klen) { i++; continue; }
        const char *value = key + klen + 1;
        if (!strcmp(key, name)) return value;
        i += klen + 1 + strlen(value) + 1;
    }
    return NULL;
}

/* A non-negative decimal integer, or 0 when unset or malformed. */
static long long env_ll(const char *name)
{
    const char *v = knob(name);
    if (!v || !*v) return 0;
    char *end = NULL;
    long long x = strtoll(v, &end, 10);
    if (end == v || x < 0) return 0;
    return x;
}

/* A flag is on when set to anything but "" or "0". */
static int env_flag(const char *name)
{
    const char *v = knob(name);
    return v && *v && strcmp(v, "0") != 0;
}

static int error_injected_at(const char *where)
{
    const char *v = knob("QASR_DOUBLE_ERROR_AT");
    return v && strcmp(v, where) == 0;
}

/*
 * Leaks.  Every block is touched (memset) so RSS really rises, and linked into a global list
 * through its first bytes so it stays reachable: a real, growing live heap (mallinfo2
 * uordblks + hblkhd), exactly what the lab must call a leak.
 */
static pthread_mutex_t g_mem_lock = PTHREAD_MUTEX_INITIALIZER;
static void *g_leaked; /* singly linked through the first pointer of each block */

static void leak_bytes(long long bytes)
{
    if (bytes <= 0) return;
    size_t n = (size_t)bytes < sizeof(void *) ? sizeof(void *) : (size_t)bytes;
    void *p = malloc(n);
    if (!p) return;
    memset(p, 0x5A, n);
    pthread_mutex_lock(&g_mem_lock);
    *(void **)p = g_leaked;
    g_leaked = p;
    pthread_mutex_unlock(&g_mem_lock);
}

static void leak_from_env(const char *name) { leak_bytes(env_ll(name)); }

/*
 * Warm-up then plateau: a per-process cache that grows by GROW bytes per inference until it
 * holds PLATEAU bytes, then stays put.  Live heap rises early and goes flat: NOT a leak.
 */
static void *g_cache;          /* linked like g_leaked */
static long long g_cache_bytes; /* guarded by g_mem_lock */

static void grow_cache_from_env(void)
{
    long long grow = env_ll("QASR_DOUBLE_GROW_BYTES");
    long long plateau = env_ll("QASR_DOUBLE_PLATEAU_BYTES");
    pthread_mutex_lock(&g_mem_lock);
    long long room = plateau - g_cache_bytes;
    long long n = grow < room ? grow : room;
    if (n >= (long long)sizeof(void *)) {
        void *p = malloc((size_t)n);
        if (p) {
            memset(p, 0xC5, (size_t)n);
            *(void **)p = g_cache;
            g_cache = p;
            g_cache_bytes += n;
        }
    }
    pthread_mutex_unlock(&g_mem_lock);
}

/*
 * Allocator retention without a leak.
 *
 * Each call allocates RETAIN bytes as blocks of about 64 KiB (below glibc's 128 KiB mmap
 * threshold, so they come from the heap), touches them, then shrinks every block in place to a
 * 64-byte "pin" with realloc.  glibc keeps a shrunk chunk where it is and frees its tail, so the
 * heap becomes pin, hole, pin, hole...: the holes are free (fordblks grows) but stay resident
 * (RSS grows), and the live heap only grows by the pins (16 x 80 bytes per MiB).  Holes between
 * pins can never be trimmed from the top of the heap, yet malloc_trim(0) gives their pages back,
 * because it also releases whole free pages in the middle of the heap.
 *
 * For RSS to grow on every call, not only the first, a call must not fit into the holes of the
 * calls before it: so every call asks for blocks 16 bytes bigger than the last (64 KiB + 16 k),
 * up to a cap under the mmap threshold, after which the holes get reused and growth stops.
 * Nothing here depends on which thread (which malloc arena) the caller runs on.
 *
 * The lab's cross-checks behave as they should on real retention: under jemalloc (LD_PRELOAD)
 * or with MALLOC_MMAP_THRESHOLD_ below the block size, blocks are not glibc heap chunks, so
 * they are freed whole (their pages go back or get reused) and only a 64-byte pin is kept.
 */
#define RETAIN_BLOCK_MIN (64 * 1024)
#define RETAIN_BLOCK_MAX (120 * 1024)
#define RETAIN_PIN 64
static long long g_retain_calls; /* guarded by g_mem_lock */
static void *g_pins;             /* linked like g_leaked */

/*
 * Did this block come from the heap proper?  glibc returns a heap chunk for a request that is a
 * multiple of 16 with exactly request + 8 usable bytes.  An mmapped chunk (page-rounded), or a
 * size class of another allocator, has a different usable size: shrinking it would not leave a
 * hole behind a pin, so such a block is freed and a plain 64-byte pin taken instead.
 */
static int is_heap_chunk(void *p, size_t request) { return malloc_usable_size(p) == request + 8; }

static void keep_pin(void *pin)
{
    if (!pin) return;
    *(void **)pin = g_pins;
    g_pins = pin;
}

static void retain_from_env(void)
{
    long long bytes = env_ll("QASR_DOUBLE_RETAIN_BYTES");
    if (bytes <= 0) return;
    pthread_mutex_lock(&g_mem_lock);
    long long grown = RETAIN_BLOCK_MIN + 16 * g_retain_calls++;
    size_t block = (size_t)(grown < RETAIN_BLOCK_MAX ? grown : RETAIN_BLOCK_MAX);
    size_t count = (size_t)((bytes + (long long)block - 1) / (long long)block);
    /* The pointer table lives outside the malloc heap so it does not disturb the layout. */
    size_t table_bytes = count * sizeof(void *);
    void **blocks = mmap(NULL, table_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (blocks == MAP_FAILED) {
        pthread_mutex_unlock(&g_mem_lock);
        return;
    }
    size_t n = 0;
    while (n < count && (blocks[n] = malloc(block)) != NULL) {
        memset(blocks[n], 0x3C, block);
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        if (is_heap_chunk(blocks[i], block)) {
            void *pin = realloc(blocks[i], RETAIN_PIN); /* in place: the tail becomes a hole */
            keep_pin(pin ? pin : blocks[i]);
        } else {
            free(blocks[i]);
            keep_pin(malloc(RETAIN_PIN));
        }
    }
    munmap(blocks, table_bytes);
    pthread_mutex_unlock(&g_mem_lock);
}

/*
 * Noise without a leak: each inference holds a buffer of a random size in [0, NOISE] bytes until
 * the next inference frees it, and with probability 1/SPIKE_EVERY (default 10) an extra SPIKE
 * bytes as well. Both are touched, so the memory the lab samples after a turn jumps around while
 * nothing accumulates. QASR_DOUBLE_SEED seeds the generator (a xorshift, for reproducible runs).
 */
static void *g_noise;        /* guarded by g_mem_lock */
static unsigned long long g_rng; /* guarded by g_mem_lock */

static unsigned long long next_random(void)
{
    if (g_rng == 0) {
        long long seed = env_ll("QASR_DOUBLE_SEED");
        g_rng = seed > 0 ? (unsigned long long)seed * 0x9E3779B97F4A7C15ULL : 0x2545F4914F6CDD1DULL;
    }
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static void noise_from_env(void)
{
    long long noise = env_ll("QASR_DOUBLE_NOISE_BYTES");
    long long spike = env_ll("QASR_DOUBLE_SPIKE_BYTES");
    long long every = env_ll("QASR_DOUBLE_SPIKE_EVERY");
    if (noise <= 0 && spike <= 0) return;
    pthread_mutex_lock(&g_mem_lock);
    free(g_noise);
    g_noise = NULL;
    size_t n = noise > 0 ? (size_t)(next_random() % (unsigned long long)(noise + 1)) : 0;
    if (spike > 0 && next_random() % (unsigned long long)(every > 0 ? every : 10) == 0) n += (size_t)spike;
    if (n > 0) {
        g_noise = malloc(n);
        if (g_noise) memset(g_noise, 0x77, n);
    }
    pthread_mutex_unlock(&g_mem_lock);
}

/* Every per-inference memory knob, applied in the calling thread before the turn runs. */
static void apply_inference_knobs(void)
{
    leak_from_env("QASR_DOUBLE_LEAK_INFERENCE");
    grow_cache_from_env();
    retain_from_env();
    noise_from_env();
}

/* Count one more event on *counter; abort with "injected abort at WHAT k" when it is the knob's k-th. */
static void abort_at_count(atomic_long *counter, const char *knob, const char *what)
{
    long k = atomic_fetch_add(counter, 1) + 1;
    long long at = env_ll(knob);
    if (at > 0 && at == k) {
        char msg[96];
        snprintf(msg, sizeof msg, "qasr double: injected abort at %s %ld\n", what, k);
        say(msg);
        abort();
    }
}

/* QASR_DOUBLE_ABORT_LONGER_THAN_MS=N: an input whose audio lasts longer than N ms kills every
 * process that reads it (SIGABRT): a poison input, as opposed to a fault of one process. */
static void abort_if_poison(long long duration_ms)
{
    long long limit = env_ll("QASR_DOUBLE_ABORT_LONGER_THAN_MS");
    if (limit > 0 && duration_ms > limit) {
        char msg[128];
        snprintf(msg, sizeof msg, "qasr double: injected abort on audio of %lld ms (longer than %lld)\n", duration_ms, limit);
        say(msg);
        abort();
    }
}

/* QASR_DOUBLE_ABORT_AT_CALL=k: the k-th inference call of the process dies with SIGABRT. */
static atomic_long g_inference_calls;

static void count_inference_call(void) { abort_at_count(&g_inference_calls, "QASR_DOUBLE_ABORT_AT_CALL", "call"); }

/* QASR_DOUBLE_ABORT_AT_MS=N: a turn whose audio lasts N ms (to the millisecond) dies with SIGABRT, in
 * every process and at every attempt: an input that kills the engine, whichever worker takes it. */
static void abort_on_duration(long long duration_ms)
{
    long long at = env_ll("QASR_DOUBLE_ABORT_AT_MS");
    if (at > 0 && at == duration_ms) {
        char msg[96];
        snprintf(msg, sizeof msg, "qasr double: injected abort on a %lld ms input\n", duration_ms);
        say(msg);
        abort();
    }
}

/*
 * Knobs that act only on aligner turns, so a two-model chain (ASR, then the aligner) can have a
 * fault in one step: QASR_DOUBLE_ABORT_AT_ALIGN=k kills the k-th aligner turn of the process,
 * QASR_DOUBLE_LEAK_ALIGN=N leaks N bytes per aligner turn (after the abort check, like CALL).
 */
static atomic_long g_aligner_turns;

static void apply_aligner_knobs(void)
{
    abort_at_count(&g_aligner_turns, "QASR_DOUBLE_ABORT_AT_ALIGN", "aligner turn");
    leak_from_env("QASR_DOUBLE_LEAK_ALIGN");
}

/* QASR_DOUBLE_ABORT_AT_EXIT=1: like upstream's static destructors once a model was loaded. */
static atomic_int g_any_started;

__attribute__((destructor)) static void abort_at_exit_hook(void)
{
    if (atomic_load(&g_any_started) && env_flag("QASR_DOUBLE_ABORT_AT_EXIT")) {
        say("free(): invalid pointer\n");
        abort();
    }
}

/* ---- library init */

static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
static struct strv g_init_words;
static atomic_int g_init_count;

const char *qasr_double_identity(void) { return "qasr test double"; }

int qasr_double_init_count(void) { return atomic_load(&g_init_count); }

void chatllm_append_init_param(const char *utf8_str)
{
    if (!utf8_str) return;
    pthread_mutex_lock(&g_init_lock);
    strv_push(&g_init_words, utf8_str);
    pthread_mutex_unlock(&g_init_lock);
}

int chatllm_init(void)
{
    atomic_fetch_add(&g_init_count, 1);
    int rc = 0;
    pthread_mutex_lock(&g_init_lock);
    for (size_t i = 0; i + 1 < g_init_words.n; i++) {
        if (strcmp(g_init_words.v[i], "--ggml_dir") == 0) {
            struct stat st;
            if (stat(g_init_words.v[i + 1], &st) != 0 || !S_ISDIR(st.st_mode)) rc = 1;
        }
    }
    pthread_mutex_unlock(&g_init_lock);
    return rc;
}

/* ---- the model object */

struct chatllm_obj {
    struct strv params; /* argv-style words from chatllm_append_param */

    f_chatllm_print f_print;
    f_chatllm_end f_end;
    void *user_data;

    /* Set by chatllm_start; the strings point into params, whose words never move. */
    int started;
    enum purpose purpose;
    const char *language; /* NULL unless --set language X */
    const char *format;
    const char *tag_open, *tag_close;
    long max_length;

    atomic_int gen_max_tokens; /* < 0: unlimited */
    atomic_int abort_requested;
    atomic_int busy; /* a turn is running: re-entrant input is refused like upstream */
    atomic_int cursor;

    /* The system prompt given to chatllm_restart (NULL: none); QASR_DOUBLE_ECHO_CONTEXT=1 makes
     * an ASR turn repeat it as the transcript, as Qwen3-ASR sometimes does (QwenLM/Qwen3-ASR#106). */
    char *sys_prompt;
    /* chatllm_set_ai_prefix: forced start of the answer, printed as one chunk, then continued. */
    char *ai_prefix;
    /* QASR_DOUBLE_WORDS=audio: the words heard in this turn's audio (see audio_words). */
    struct strv heard;

    /* The multimedia message: only what the aligner needs, never the base64 itself. */
    int msg_has_audio;
    long long msg_audio_ms;
    struct strbuf msg_text;
};

static void emit(struct chatllm_obj *o, int type, const char *s)
{
    if (o->f_print) o->f_print(o->user_data, type, s);
}

static void emitf(struct chatllm_obj *o, int type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void emitf(struct chatllm_obj *o, int type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) >= 0) {
        emit(o, type, s);
        free(s);
    }
    va_end(ap);
}

/*
 * QASR_DOUBLE_LAST_STARTED_PRINTS=1: what upstream 4a4310e does with two objects in one process.
 * Upstream has one chunk interceptor for the whole process, re-pointed at the newest object's
 * streamer by every chatllm_start, so every object's chunks (and one extra pair of f_end) reach the
 * callback of the object started last, with that object's user data.  Here the object started last
 * successfully is remembered; destroying it forgets it (upstream keeps a dangling pointer instead).
 */
static struct chatllm_obj *_Atomic g_last_started;

static struct chatllm_obj *chunk_receiver(struct chatllm_obj *o)
{
    struct chatllm_obj *last = atomic_load(&g_last_started);
    return (last && env_flag("QASR_DOUBLE_LAST_STARTED_PRINTS")) ? last : o;
}

struct chatllm_obj *chatllm_create(void)
{
    leak_from_env("QASR_DOUBLE_LEAK_CREATE");
    struct chatllm_obj *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    atomic_init(&o->gen_max_tokens, -1);
    return o;
}

int chatllm_destroy(struct chatllm_obj *obj)
{
    leak_from_env("QASR_DOUBLE_LEAK_DESTROY");
    if (env_flag("QASR_DOUBLE_ABORT_IN_DESTROY")) {
        /* What upstream's Qwen3-ASR destructor does (a unique_ptr owning a member's address). */
        say("free(): invalid pointer\n");
        abort();
    }
    if (!obj) return 0;
    struct chatllm_obj *expected = obj;
    atomic_compare_exchange_strong(&g_last_started, &expected, NULL);
    strv_free(&obj->params);
    free(obj->msg_text.s);
    free(obj->sys_prompt);
    free(obj->ai_prefix);
    strv_free(&obj->heard);
    free(obj);
    return 0;
}

void chatllm_append_param(struct chatllm_obj *obj, const char *utf8_str)
{
    if (obj && utf8_str) strv_push(&obj->params, utf8_str);
}

/* ---- chatllm_start: options and the model file */

struct options {
    const char *model;
    const char *language, *format;
    const char *tag_open, *tag_close;
    long max_length;
};

/* Only the words qasr passes matter; anything else is skipped one word at a time. */
static void parse_options(const struct strv *w, struct options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->tag_open = "{{";
    opt->tag_close = "}}";
    for (size_t i = 0; i < w->n; i++) {
        const char *a = w->v[i];
        int has1 = i + 1 < w->n, has2 = i + 2 < w->n;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has1) {
            opt->model = w->v[++i];
        } else if (!strcmp(a, "--set") && has2) {
            const char *key = w->v[i + 1], *val = w->v[i + 2];
            if (!strcmp(key, "language")) opt->language = val;
            else if (!strcmp(key, "format")) opt->format = val;
            i += 2;
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has1) {
            i++; /* accepted, nothing to run in parallel */
        } else if (!strcmp(a, "--max_length") && has1) {
            opt->max_length = strtol(w->v[++i], NULL, 10);
        } else if (!strcmp(a, "--multimedia_file_tags") && has2) {
            opt->tag_open = w->v[i + 1];
            opt->tag_close = w->v[i + 2];
            i += 2;
        }
    }
}

/* Read the model type like upstream's header check; print an error line on failure. */
static enum purpose read_model_purpose(struct chatllm_obj *o, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        emitf(o, PRINTLN_ERROR, "cannot open model file %s: %s", path, strerror(errno));
        return PURPOSE_NONE;
    }
    unsigned char head[12] = {0}, cfg[4];
    ssize_t got = pread(fd, head, sizeof head, 0);
    enum purpose p = PURPOSE_NONE;
    if (got < 4 || memcmp(head, "ggmm", 4) != 0) {
        char magic[5] = {0};
        for (int i = 0; i < 4 && i < got; i++) magic[i] = (head[i] >= 0x20 && head[i] < 0x7f) ? (char)head[i] : '?';
        emitf(o, PRINTLN_ERROR, "model file is broken (bad magic): %s", magic);
    } else if (got < (ssize_t)sizeof head) {
        emit(o, PRINTLN_ERROR, "model file is broken (truncated header)");
    } else if (pread(fd, cfg, sizeof cfg, (off_t)le32(head + 8)) != (ssize_t)sizeof cfg) {
        emit(o, PRINTLN_ERROR, "model file is broken (no model type at offset_config)");
    } else {
        int32_t type = (int32_t)le32(cfg);
        if (type == MODEL_TYPE_QWEN3_ASR) p = PURPOSE_ASR;
        else if (type == MODEL_TYPE_QWEN3_FORCED_ALIGNER) p = PURPOSE_ALIGNER;
        else emitf(o, PRINTLN_ERROR, "qasr test double: unsupported model type 0x%08X", (unsigned)type);
    }
    close(fd);
    return p;
}

static const char *purpose_name(enum purpose p)
{
    /* As upstream 4a4310e reports them: the aligner's type tag makes it a Chat audio-input model. */
    return p == PURPOSE_ASR ? "ASR" : p == PURPOSE_ALIGNER ? "Chat" : "?";
}

static const char *capabilities_json(enum purpose p)
{
    return p == PURPOSE_ASR ? "[\"ASR\"]" : "[\"Text\",\"Audio Input\"]";
}

/* "name" in the model info: the file name without directory and last extension. */
static char *file_stem(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = (dot && dot != base) ? (size_t)(dot - base) : strlen(base);
    return strndup(base, n);
}

static void emit_model_info(struct chatllm_obj *o, const char *path)
{
    char *stem = file_stem(path);
    struct strbuf sb = {0};
    sb_puts(&sb, "{\"name\":");
    sb_json_string(&sb, stem ? stem : "");
    sb_printf(&sb, ",\"purpose\":\"%s\",\"capabilities\":%s", purpose_name(o->purpose), capabilities_json(o->purpose));
    sb_printf(&sb, ",\"param_num\":%d,\"context_length\":%ld}", FAKE_PARAM_NUM,
              o->max_length > 0 ? o->max_length : (long)DEFAULT_CONTEXT_LENGTH);
    emitf(o, PRINTLN_META, "qasr test double: loaded %s as %s (a stand-in, not the chatllm.cpp engine)",
          stem ? stem : "", purpose_name(o->purpose));
    if (sb.s) emit(o, PRINTLN_MODEL_INFO, sb.s);
    free(sb.s);
    free(stem);
}

int chatllm_start(struct chatllm_obj *obj, f_chatllm_print f_print, f_chatllm_end f_end, void *user_data)
{
    if (!obj) return -1;
    obj->f_print = f_print;
    obj->f_end = f_end;
    obj->user_data = user_data;
    obj->started = 0;
    leak_from_env("QASR_DOUBLE_LEAK_START");
    if (error_injected_at("start")) {
        emit(obj, PRINTLN_ERROR, "injected error at start");
        return 1;
    }
    struct options opt;
    parse_options(&obj->params, &opt);
    if (!opt.model) {
        emit(obj, PRINTLN_ERROR, "model path is required");
        return -1;
    }
    enum purpose p = read_model_purpose(obj, opt.model);
    if (p == PURPOSE_NONE) return 1;
    obj->purpose = p;
    obj->language = opt.language;
    obj->format = opt.format;
    obj->tag_open = opt.tag_open;
    obj->tag_close = opt.tag_close;
    obj->max_length = opt.max_length;
    obj->started = 1;
    atomic_store(&g_any_started, 1);
    atomic_store(&g_last_started, obj);
    emit_model_info(obj, opt.model);
    return 0;
}

void chatllm_set_gen_max_tokens(struct chatllm_obj *obj, int gen_max_tokens)
{
    if (obj) atomic_store(&obj->gen_max_tokens, gen_max_tokens);
}

void chatllm_restart(struct chatllm_obj *obj, const char *utf8_sys_prompt)
{
    leak_from_env("QASR_DOUBLE_LEAK_RESTART");
    if (!obj) return;
    atomic_store(&obj->cursor, 0);
    if (utf8_sys_prompt) { /* NULL keeps the current prompt, like upstream */
        free(obj->sys_prompt);
        obj->sys_prompt = strdup(utf8_sys_prompt);
    }
}

int chatllm_set_ai_prefix(struct chatllm_obj *obj, const char *utf8_str)
{
    if (!obj) return -1;
    free(obj->ai_prefix);
    obj->ai_prefix = (utf8_str && utf8_str[0]) ? strdup(utf8_str) : NULL;
    return 0;
}

int chatllm_get_cursor(struct chatllm_obj *obj) { return obj ? atomic_load(&obj->cursor) : 0; }

void chatllm_abort_generation(struct chatllm_obj *obj)
{
    if (obj) atomic_store(&obj->abort_requested, 1);
}

void chatllm_show_statistics(struct chatllm_obj *obj) { (void)obj; }

/* ---- audio: just enough WAV parsing to know the duration */

/* Bytes from either an open file or a decoded in-memory prefix of a longer buffer. */
struct byte_src {
    int fd;                   /* >= 0: read from this file */
    const unsigned char *mem; /* else: these bytes ... */
    size_t mem_len;
    unsigned long long total; /* ... out of this many in the whole object */
};

static int src_read(const struct byte_src *s, unsigned long long off, void *buf, size_t n)
{
    if (s->fd >= 0) return pread(s->fd, buf, n, (off_t)off) == (ssize_t)n ? 0 : -1;
    if (off > s->mem_len || n > s->mem_len - off) return -1;
    memcpy(buf, s->mem + off, n);
    return 0;
}

/* Duration in ms of a RIFF/WAVE: data bytes / byte rate.  0 when it is not a WAV we can read. */
static long long wav_duration_ms(const struct byte_src *s)
{
    unsigned char h[12];
    if (src_read(s, 0, h, 12) || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4)) return 0;
    unsigned long long pos = 12, byte_rate = 0;
    while (pos + 8 <= s->total) {
        unsigned char ch[8];
        if (src_read(s, pos, ch, 8)) return 0;
        unsigned long long size = le32(ch + 4), body = pos + 8;
        if (!memcmp(ch, "fmt ", 4)) {
            unsigned char fmt[16];
            if (src_read(s, body, fmt, 16)) return 0;
            byte_rate = le32(fmt + 8);
        } else if (!memcmp(ch, "data", 4)) {
            /* Streamed WAVs leave the size unset (0 or ~0): the data runs to the end. */
            if (size == 0 || size == 0xFFFFFFFFull || body + size > s->total) size = s->total - body;
            return byte_rate ? (long long)(size * 1000 / byte_rate) : 0;
        }
        pos = body + size + (size & 1);
    }
    return 0;
}

/* QASR_DOUBLE_WORDS=audio: a transcript that depends on the audio, so streaming tests can check
 * that every stretch of sound is transcribed once, in order.  The samples (16-bit PCM or 32-bit
 * float WAV) are cut into 10 ms frames; a frame is loud when its RMS exceeds 0.01.  A burst is a
 * run of loud frames (gaps of up to 50 ms bridged, bursts under 50 ms ignored).  Each burst is one
 * word "w<N>", N = its zero-crossing frequency in Hz / 25, rounded (measured between its first and last
 * crossing): a 300 Hz tone says "w12",
 * 350 Hz "w14".  A burst still sounding at the end of the audio may be cut off, so its word ends
 * in "~" (what a model does with a word it has only half heard). */
/* Words of audio: one per loud burst, named after its frequency (see QASR_DOUBLE_WORDS). */
static void words_from_samples(const float *x, unsigned long long n, unsigned long long rate, struct strv *out)
{
    if (rate == 0) return;
    unsigned long long frame = rate / 100, frames = n / frame;
    double floor_rms = knob("QASR_DOUBLE_WORDS_RMS") ? atof(knob("QASR_DOUBLE_WORDS_RMS")) : 0.01;
    long long start = -1, last_loud = -1;
    for (unsigned long long f = 0; f <= frames; f++) {
        int loud = 0;
        if (f < frames) {
            double e = 0;
            for (unsigned long long k = 0; k < frame; k++) e += (double)x[f * frame + k] * x[f * frame + k];
            loud = e / (double)frame > floor_rms * floor_rms;
        }
        if (loud) {
            if (start < 0) start = (long long)f;
            last_loud = (long long)f;
        }
        if (start >= 0 && (!loud && ((long long)f - last_loud > 5 || f == frames))) {
            long long len = last_loud - start + 1;
            if (len >= 5) {
                unsigned long long a = (unsigned long long)start * frame, z = (unsigned long long)(last_loud + 1) * frame;
                /* Frequency from the span between the first and the last zero crossing: frame
                 * edges would add silence to the duration and bias short bursts low. */
                long long crossings = 0, first = -1, final = -1;
                for (unsigned long long k = a + 1; k < z; k++) {
                    if ((x[k - 1] < 0) != (x[k] < 0)) {
                        if (first < 0) first = (long long)k;
                        final = (long long)k;
                        crossings++;
                    }
                }
                double hz = crossings > 1 ? (double)(crossings - 1) * (double)rate / (2.0 * (double)(final - first)) : 0.0;
                int cut = (unsigned long long)last_loud + 1 >= frames - 1;
                char word[32];
                snprintf(word, sizeof word, "w%ld%s", lround(hz / 25.0), cut ? "~" : "");
                strv_push(out, word);
            }
            start = -1;
        }
    }
}

static void audio_words(int fd, unsigned long long total, struct strv *out)
{
    unsigned char h[12];
    struct byte_src s = {.fd = fd, .total = total};
    if (src_read(&s, 0, h, 12) || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4)) return;
    unsigned long long pos = 12, rate = 16000;
    int format = 1, channels = 1, bits = 16;
    while (pos + 8 <= total) {
        unsigned char ch[8];
        if (src_read(&s, pos, ch, 8)) return;
        unsigned long long size = le32(ch + 4), body = pos + 8;
        if (!memcmp(ch, "fmt ", 4)) {
            unsigned char fmt[16];
            if (src_read(&s, body, fmt, 16)) return;
            format = fmt[0] | (fmt[1] << 8);
            channels = fmt[2] | (fmt[3] << 8);
            rate = le32(fmt + 4);
            bits = fmt[14] | (fmt[15] << 8);
            if (format == 0xFFFE) format = bits == 32 ? 3 : 1; /* extensible: float if 32-bit here */
        } else if (!memcmp(ch, "data", 4)) {
            if (size == 0 || size == 0xFFFFFFFFull || body + size > total) size = total - body;
            int width = bits / 8;
            if (channels < 1 || width < 2 || rate == 0) return;
            unsigned long long n = size / (unsigned long long)(width * channels);
            unsigned char *raw = malloc(size ? size : 1);
            if (!raw || src_read(&s, body, raw, size)) { free(raw); return; }
            float *x = malloc((n ? n : 1) * sizeof *x);
            for (unsigned long long i = 0; x && i < n; i++) {
                const unsigned char *b = raw + i * (unsigned long long)(width * channels);
                if (format == 3 && width == 4) { float f; memcpy(&f, b, 4); x[i] = f; }
                else x[i] = (float)(int16_t)(b[0] | (b[1] << 8)) / 32768.0f;
            }
            free(raw);
            if (!x) return;
            words_from_samples(x, n, rate, out);
            free(x);
            return;
        }
        pos = body + size + (size & 1);
    }
}

/* Decode audio the way the engine does (src/audio_process.cpp): ffmpeg through a shell, the file name
 * in double quotes, raw 16 kHz mono float32 on its stdout. Used when the named file does not exist
 * itself: qasr stages only the raw samples when its ffmpeg shim is on PATH, and the shim serves them. */
static float *ffmpeg_samples(const char *path, unsigned long long *count)
{
    char *cmd = NULL;
    if (asprintf(&cmd, "ffmpeg -nostdin -threads 0 -i \"%s\" -f f32le -ac 1 -ar 16000 -hide_banner -loglevel error -", path) < 0)
        return NULL;
    FILE *pipe = popen(cmd, "r");
    free(cmd);
    if (!pipe) return NULL;
    size_t cap = 16000, len = 0;
    float *x = malloc(cap * sizeof *x);
    while (x) {
        if (len == cap) {
            float *y = realloc(x, 2 * cap * sizeof *x);
            if (!y) { free(x); x = NULL; break; }
            x = y;
            cap *= 2;
        }
        size_t got = fread(x + len, sizeof *x, cap - len, pipe);
        if (got == 0) break;
        len += got;
    }
    pclose(pipe);
    if (x && len == 0) { free(x); x = NULL; }
    *count = len;
    return x;
}

/* Decode the start of a base64 string into out; return how many bytes the whole string holds. */
static unsigned long long base64_prefix(const char *b64, unsigned char *out, size_t cap, size_t *out_len)
{
    unsigned long long sextets = 0;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (const char *p = b64; *p && *p != '='; p++) {
        int c = (unsigned char)*p, v;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+' || c == '-') v = 62;
        else if (c == '/' || c == '_') v = 63;
        else continue; /* whitespace and line breaks */
        sextets++;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n < cap) out[n++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = n;
    return sextets * 6 / 8;
}

/* ---- building a turn's output */

static void asr_chunks(const struct chatllm_obj *o, struct strv *out)
{
    const char *lang = knob("QASR_DOUBLE_LANGUAGE");
    int by_audio = knob("QASR_DOUBLE_WORDS") && !strcmp(knob("QASR_DOUBLE_WORDS"), "audio");
    struct strv words = {0};
    if (by_audio) {
        for (size_t i = 0; i < o->heard.n; i++) strv_push(&words, o->heard.v[i]);
    } else {
        const char *text = knob("QASR_DOUBLE_TEXT");
        if (!text) text = DEFAULT_TEXT;
        if (env_flag("QASR_DOUBLE_ECHO_CONTEXT") && o->sys_prompt && o->sys_prompt[0]) text = o->sys_prompt;
        for (const char *p = text; *p;) {
            while (*p && is_blank((unsigned char)*p)) p++;
            const char *w = p;
            while (*p && !is_blank((unsigned char)*p)) p++;
            if (p > w) strv_push_n(&words, w, (size_t)(p - w));
        }
    }
    size_t skip = 0;
    if (o->ai_prefix) {
        /* A forced answer start: printed as it is, then the model goes on after as many words. */
        strv_push(out, o->ai_prefix);
        const char *tail = strstr(o->ai_prefix, "<asr_text>");
        for (const char *p = tail ? tail + 10 : "", *w; *p;) {
            while (*p && is_blank((unsigned char)*p)) p++;
            for (w = p; *p && !is_blank((unsigned char)*p); p++) {}
            if (p > w) skip++;
        }
    } else if (by_audio && words.n == 0 && !o->language) {
        strv_push(out, "language");
        strv_push(out, " None"); /* what the model says when it hears no speech */
        strv_free(&words);
        return;
    } else {
        if (!o->language) {
            /* Without --set language the model names the language it heard first. */
            struct strbuf sb = {0};
            sb_puts(&sb, " ");
            sb_puts(&sb, lang ? lang : DEFAULT_LANGUAGE);
            strv_push(out, "language");
            strv_push(out, sb.s);
            free(sb.s);
        }
        strv_push(out, "<asr_text>");
    }
    for (size_t i = skip; i < words.n; i++) {
        struct strbuf sb = {0};
        if (i > 0 || o->ai_prefix) sb_puts(&sb, " ");
        sb_puts(&sb, words.v[i]);
        strv_push(out, sb.s);
        free(sb.s);
    }
    strv_free(&words);
}

/* Han ideographs and kana are aligned one character at a time. */
static int is_cjk_unit(uint32_t c)
{
    return (c >= 0x3040 && c <= 0x30FF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x20000 && c <= 0x3134F);
}

/* Whitespace, CJK punctuation and full-width punctuation separate units and are dropped. */
static int is_separator(uint32_t c)
{
    return (c < 0x80 && is_blank((int)c)) || (c >= 0x3000 && c <= 0x303F) || (c >= 0xFF01 && c <= 0xFF0F) ||
           (c >= 0xFF1A && c <= 0xFF20) || (c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65);
}

static void split_units(const char *text, struct strv *units)
{
    const unsigned char *p = (const unsigned char *)text, *word = NULL;
    while (*p) {
        uint32_t c;
        size_t len = utf8_next(p, &c);
        if (is_separator(c) || is_cjk_unit(c)) {
            if (word) strv_push_n(units, (const char *)word, (size_t)(p - word));
            word = NULL;
            if (is_cjk_unit(c)) strv_push_n(units, (const char *)p, len);
        } else if (!word) {
            word = p;
        }
        p += len;
    }
    if (word) strv_push_n(units, (const char *)word, (size_t)(p - word));
}

/* The aligner's single chunk: units spread evenly over the audio, boundaries floored to 80 ms. */
static void aligner_chunks(const char *transcript, long long duration_ms, struct strv *out)
{
    struct strv units = {0};
    split_units(transcript ? transcript : "", &units);
    struct strbuf sb = {0};
    sb_puts(&sb, "[");
    long long n = (long long)units.n;
    for (long long i = 0; i < n; i++) {
        long long start = i * duration_ms / n / ALIGN_BIN_MS * ALIGN_BIN_MS;
        long long end = (i + 1) * duration_ms / n / ALIGN_BIN_MS * ALIGN_BIN_MS;
        sb_printf(&sb, "%s{\"start\":%lld,\"end\":%lld,\"text\":", i ? "," : "", start, end);
        sb_json_string(&sb, units.v[i]);
        sb_puts(&sb, "}");
    }
    sb_puts(&sb, "]");
    if (sb.s) strv_push(out, sb.s);
    free(sb.s);
    strv_free(&units);
}

/* ---- delivering a turn: inline, or from a native thread when QASR_DOUBLE_THREAD=1 */

struct turn {
    struct chatllm_obj *obj;
    struct strv chunks;
    long delay_ms;
};

static void deliver(struct turn *t)
{
    struct chatllm_obj *o = t->obj;
    struct chatllm_obj *receiver = chunk_receiver(o);
    int emitted = 0;
    for (size_t i = 0; i < t->chunks.n; i++) {
        int cap = atomic_load(&o->gen_max_tokens);
        int deaf = env_flag("QASR_DOUBLE_IGNORE_ABORT"); /* a stuck engine: aborts are not heard */
        if ((!deaf && atomic_load(&o->abort_requested)) || (cap >= 0 && emitted >= cap)) break;
        if (t->delay_ms > 0) sleep_ms(t->delay_ms);
        if (!deaf && atomic_load(&o->abort_requested)) break; /* aborted while "computing" this chunk */
        emit(receiver, PRINT_CHAT_CHUNK, t->chunks.v[i]);
        atomic_fetch_add(&o->cursor, 1);
        emitted++;
    }
    /* Upstream calls f_end twice per turn; qasr must cope, so the double does too.  When the chunks
     * went to another object (LAST_STARTED_PRINTS), upstream's order is: own f_end once, then the
     * receiver's twice. */
    if (o->f_end) o->f_end(o->user_data);
    if (receiver->f_end) {
        if (receiver != o) receiver->f_end(receiver->user_data);
        receiver->f_end(receiver->user_data);
    }
}

static void *deliver_thread(void *arg)
{
    deliver(arg);
    return NULL;
}

static int run_turn(struct turn *t)
{
    int threaded = env_flag("QASR_DOUBLE_THREAD");
    t->delay_ms = (long)env_ll("QASR_DOUBLE_TOKEN_DELAY_MS");
    pthread_t th;
    if (threaded && pthread_create(&th, NULL, deliver_thread, t) == 0) pthread_join(th, NULL);
    else deliver(t);
    strv_free(&t->chunks);
    return 0;
}

/*
 * What every inference entry point does before its own work: refuse a re-entrant call, forget
 * an old abort, apply the memory knobs, then the injected error.  Returns 0 to go on, or the
 * return code for the caller (busy is released by finish_turn in every case).
 */
static int begin_turn(struct chatllm_obj *o)
{
    if (atomic_exchange(&o->busy, 1)) return -1;
    atomic_store(&o->abort_requested, 0);
    if (o->purpose == PURPOSE_ALIGNER) apply_aligner_knobs();
    apply_inference_knobs();
    if (error_injected_at("inference")) {
        emit(o, PRINTLN_ERROR, "injected error at inference");
        atomic_store(&o->busy, 0);
        return -3;
    }
    return 0;
}

static int finish_turn(struct chatllm_obj *o, int rc)
{
    atomic_store(&o->busy, 0);
    return rc;
}

/* Find TAG_OPEN audio:PATH TAG_CLOSE; return PATH (heap) and where the text after it starts. */
static char *find_audio_tag(const struct chatllm_obj *o, const char *text, const char **after)
{
    size_t lo = strlen(o->tag_open), lc = strlen(o->tag_close);
    if (lo == 0 || lc == 0) return NULL;
    for (const char *s = strstr(text, o->tag_open); s; s = strstr(s + 1, o->tag_open)) {
        const char *q = s + lo;
        if (strncmp(q, "audio:", 6) != 0) continue;
        q += 6;
        const char *e = strstr(q, o->tag_close);
        if (!e) return NULL;
        *after = e + lc;
        return strndup(q, (size_t)(e - q));
    }
    return NULL;
}

int chatllm_user_input(struct chatllm_obj *obj, const char *utf8_str)
{
    count_inference_call();
    if (!obj || !obj->started || !utf8_str) return -1;
    int rc = begin_turn(obj);
    if (rc) return rc;

    const char *after = NULL;
    char *path = find_audio_tag(obj, utf8_str, &after);
    if (!path) {
        emit(obj, PRINTLN_ERROR, "qasr test double: no audio tag in input");
        return finish_turn(obj, -2);
    }
    int audio_words_on = knob("QASR_DOUBLE_WORDS") && !strcmp(knob("QASR_DOUBLE_WORDS"), "audio");
    long long duration_ms;
    strv_free(&obj->heard);
    memset(&obj->heard, 0, sizeof obj->heard);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0) {
        struct byte_src src = {.fd = fd, .total = (unsigned long long)st.st_size};
        duration_ms = wav_duration_ms(&src);
        if (audio_words_on) audio_words(fd, (unsigned long long)st.st_size, &obj->heard);
        close(fd);
    } else {
        if (fd >= 0) close(fd);
        unsigned long long n = 0;
        float *x = ffmpeg_samples(path, &n);
        if (!x) {
            emitf(obj, PRINTLN_ERROR, "failed to load audio: %s", path);
            free(path);
            return finish_turn(obj, -2);
        }
        duration_ms = (long long)(n * 1000ull / 16000ull);
        if (audio_words_on) words_from_samples(x, n, 16000, &obj->heard);
        free(x);
    }
    abort_if_poison(duration_ms);
    free(path);
    abort_on_duration(duration_ms);

    struct turn t = {.obj = obj};
    if (obj->purpose == PURPOSE_ALIGNER) {
        while (*after && is_blank((unsigned char)*after)) after++;
        aligner_chunks(after, duration_ms, &t.chunks);
    } else {
        asr_chunks(obj, &t.chunks);
    }
    return finish_turn(obj, run_turn(&t));
}

void chatllm_multimedia_msg_prepare(struct chatllm_obj *obj)
{
    if (!obj) return;
    obj->msg_has_audio = 0;
    obj->msg_audio_ms = 0;
    free(obj->msg_text.s);
    memset(&obj->msg_text, 0, sizeof obj->msg_text);
}

int chatllm_multimedia_msg_append(struct chatllm_obj *obj, const char *type, const char *utf8_str)
{
    if (!obj || !type || !utf8_str) return -1;
    if (!strcmp(type, "audio")) {
        /* Only the WAV header is needed: decode a prefix, keep the duration, drop the rest. */
        unsigned char head[8192];
        size_t len = 0;
        unsigned long long total = base64_prefix(utf8_str, head, sizeof head, &len);
        struct byte_src src = {.fd = -1, .mem = head, .mem_len = len, .total = total};
        obj->msg_audio_ms = wav_duration_ms(&src);
        obj->msg_has_audio = 1;
        return 0;
    }
    if (!strcmp(type, "text")) {
        if (obj->msg_text.len) sb_puts(&obj->msg_text, " ");
        sb_puts(&obj->msg_text, utf8_str);
        return 0;
    }
    return -1; /* images, video: not something qasr sends */
}

int chatllm_user_input_multimedia_msg(struct chatllm_obj *obj)
{
    count_inference_call();
    /* Upstream refuses the multimedia path for ASR models (their purpose is not Chat). */
    if (!obj || !obj->started || obj->purpose != PURPOSE_ALIGNER) return -1;
    int rc = begin_turn(obj);
    if (rc) return rc;
    if (!obj->msg_has_audio) {
        emit(obj, PRINTLN_ERROR, "qasr test double: no audio in the multimedia message");
        return finish_turn(obj, -2);
    }
    struct turn t = {.obj = obj};
    aligner_chunks(obj->msg_text.s, obj->msg_audio_ms, &t.chunks);
    return finish_turn(obj, run_turn(&t));
}
