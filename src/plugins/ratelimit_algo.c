/* ratelimit_algo.c — sliding window and token bucket (GCRA) arithmetic;
 * see ratelimit_algo.h. */
#include "plugins/ratelimit_algo.h"

#define CNT_BITS 20
#define CNT_MASK ((1ULL << CNT_BITS) - 1)
#define WIN_MASK ((1ULL << 24) - 1)

static uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* The counts as of window `win` (rolled forward when the word is older). */
static void sliding_state(uint64_t word, uint64_t win, uint64_t *prev, uint64_t *cur)
{
    uint64_t age = (win - (word >> (2 * CNT_BITS))) & WIN_MASK;
    *prev = age == 0 ? (word >> CNT_BITS) & CNT_MASK : age == 1 ? word & CNT_MASK : 0;
    *cur = age == 0 ? word & CNT_MASK : 0;
}

static uint64_t sliding_word(uint64_t win, uint64_t prev, uint64_t cur)
{
    return ((win & WIN_MASK) << (2 * CNT_BITS)) | (prev << CNT_BITS) | cur;
}

/* Milliseconds from `elapsed` into the window until prev*(W-t)/W + cur + 1 <= limit. */
static uint64_t sliding_wait(uint64_t prev, uint64_t cur, uint64_t elapsed, gh_rl_limit l)
{
    uint64_t W = l.window_ms;
    if (cur + 1 <= l.limit) {
        /* within this window, as the previous one's weight fades */
        uint64_t room = (l.limit - 1 - cur) * W;   /* prev*(W-t) must be <= room */
        if (prev * (W - elapsed) <= room)
            return 0;
        uint64_t t = W - room / prev;              /* smallest t with prev*(W-t) <= room */
        while (t < W && prev * (W - t) > room)
            t++;
        return t > elapsed ? t - elapsed : 0;
    }
    /* next window: the current count becomes the previous one */
    uint64_t room = (l.limit - 1) * W;
    uint64_t t = cur ? W - room / cur : 0;
    while (t < W && cur * (W - t) > room)
        t++;
    return (W - elapsed) + t;
}

uint64_t gh_rl_sliding_take(uint64_t word, uint64_t t_ms, gh_rl_limit l, gh_rl_step *out)
{
    uint64_t W = l.window_ms, win = t_ms / W, elapsed = t_ms % W, prev, cur;
    uint64_t ww = word >> (2 * CNT_BITS);
    if (((win - ww) & WIN_MASK) > (WIN_MASK >> 1)) {
        /* another worker's clock (cached per loop) is a little ahead and
         * already opened the next window: count in it */
        win = ww;
        elapsed = 0;
    }
    sliding_state(word, win, &prev, &cur);
    /* estimate * W, exactly: prev * (W - elapsed) + cur * W */
    uint64_t est = prev * (W - elapsed) + cur * W;
    out->allowed = est + W <= l.limit * W;
    if (out->allowed) {
        cur++;
        est += W;
        word = sliding_word(win, prev, cur);
    }
    out->remaining = est >= l.limit * W ? 0 : (l.limit * W - est) / W;
    out->reset_ms = out->remaining ? 0 : sliding_wait(prev, cur, elapsed, l);
    return word;
}

uint64_t gh_rl_sliding_refund(uint64_t word, uint64_t t_ms, gh_rl_limit l)
{
    uint64_t win = t_ms / l.window_ms, prev, cur;
    sliding_state(word, win, &prev, &cur);
    if ((word >> (2 * CNT_BITS)) != (win & WIN_MASK) || cur == 0)
        return word;   /* the window it was taken in is over: nothing to give back */
    return sliding_word(win, prev, cur - 1);
}

/* GCRA: emission interval T = W/limit; a request is allowed when the
 * theoretical arrival time is at most W - T ahead of now. */
static uint64_t interval_us(gh_rl_limit l)
{
    uint64_t T = l.window_ms * 1000 / l.limit;
    return T ? T : 1;
}

uint64_t gh_rl_bucket_take(uint64_t word, uint64_t t_ms, gh_rl_limit l, gh_rl_step *out)
{
    uint64_t now = t_ms * 1000, T = interval_us(l), tau = l.window_ms * 1000 - T;
    uint64_t tat = word > now ? word : now;
    out->allowed = tat - now <= tau;
    if (out->allowed) {
        tat += T;
        word = tat;
    }
    uint64_t ahead = tat - now;   /* how far the bucket is drawn */
    out->remaining = ahead > tau ? 0 : (tau - ahead) / T + (out->allowed ? 1 : 0);
    if (out->remaining > l.limit)
        out->remaining = l.limit;
    out->reset_ms = out->remaining ? 0 : div_up(ahead - tau, 1000);
    return word;
}

uint64_t gh_rl_bucket_refund(uint64_t word, uint64_t t_ms, gh_rl_limit l)
{
    uint64_t T = interval_us(l), now = t_ms * 1000;
    return word >= now + T ? word - T : word;
}
