/*
 * An impairment relay for a kernel without the netem qdisc: it owns two TAP devices and moves every Ethernet frame
 * that leaves one out of the other, after a delay drawn uniformly from [delay - jitter, delay + jitter], dropping each
 * frame with a given probability, and dropping everything while a partition is on. The TCP stacks on either side see
 * real loss, delay and reordering (a frame with a shorter draw overtakes, as with netem's jitter).
 *
 * TAP devices opened without IFF_VNET_HDR advertise no offloads, so the kernel segments and checksums every frame
 * before it reaches us: what we read is exactly what goes on a wire, and what we write needs no fix-up.
 *
 *   relay TAP_A TAP_B [delay_ms jitter_ms loss_percent seed]
 *
 * Prints "ready" once both devices exist. Commands on stdin, one a line:
 *   set DELAY_MS JITTER_MS LOSS_PERCENT    new impairment for frames from now on
 *   partition on | partition off           drop everything (queued frames too) | let frames through again
 *   stats                                  one JSON line of counters on stdout
 * Ends, removing both devices, on end of input or SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define FRAME_MAX 2048
/* Frames held per direction: 150 ms of a busy 100 Mbit/s link is about 1,250 full frames. */
#define QUEUE_MAX 8192

struct frame {
  uint64_t due_ns;
  uint64_t order;
  uint16_t length;
  unsigned char bytes[FRAME_MAX];
};

struct direction {
  int in_fd, out_fd;
  /* A binary min-heap on (due_ns, order) of indexes into pool; free holds the unused ones. */
  struct frame *pool;
  int heap[QUEUE_MAX], heap_len;
  int free_list[QUEUE_MAX], free_len;
  uint64_t received, lost, partitioned, overflow, sent, write_failed;
};

static double delay_ms, jitter_ms, loss_percent;
static int partition, realtime;
static uint64_t rng_state, next_order;
static volatile sig_atomic_t stopping;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* xorshift64*: reproducible draws for a given seed. */
static double uniform01(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static int earlier(const struct direction *d, int a, int b) {
  const struct frame *x = &d->pool[a], *y = &d->pool[b];
  return x->due_ns < y->due_ns || (x->due_ns == y->due_ns && x->order < y->order);
}

static void heap_push(struct direction *d, int index) {
  int at = d->heap_len++;
  d->heap[at] = index;
  while (at > 0) {
    int parent = (at - 1) / 2;
    if (!earlier(d, d->heap[at], d->heap[parent])) break;
    int t = d->heap[at];
    d->heap[at] = d->heap[parent];
    d->heap[parent] = t;
    at = parent;
  }
}

static int heap_pop(struct direction *d) {
  int top = d->heap[0];
  d->heap[0] = d->heap[--d->heap_len];
  int at = 0;
  for (;;) {
    int l = 2 * at + 1, r = l + 1, m = at;
    if (l < d->heap_len && earlier(d, d->heap[l], d->heap[m])) m = l;
    if (r < d->heap_len && earlier(d, d->heap[r], d->heap[m])) m = r;
    if (m == at) break;
    int t = d->heap[at];
    d->heap[at] = d->heap[m];
    d->heap[m] = t;
    at = m;
  }
  return top;
}

static int open_tap(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads every frame waiting on d->in_fd and queues, drops or loses each. */
static void take(struct direction *d) {
  for (;;) {
    unsigned char scratch[FRAME_MAX];
    int index = d->free_len ? d->free_list[d->free_len - 1] : -1;
    unsigned char *into = index >= 0 ? d->pool[index].bytes : scratch;
    ssize_t n = read(d->in_fd, into, FRAME_MAX);
    if (n <= 0) return;
    d->received++;
    if (partition) { d->partitioned++; continue; }
    if (loss_percent > 0 && uniform01() * 100.0 < loss_percent) { d->lost++; continue; }
    if (index < 0) { d->overflow++; continue; }
    double ms = delay_ms + (jitter_ms > 0 ? (uniform01() * 2.0 - 1.0) * jitter_ms : 0);
    if (ms < 0) ms = 0;
    struct frame *f = &d->pool[index];
    f->due_ns = now_ns() + (uint64_t)(ms * 1e6);
    f->order = next_order++;
    f->length = (uint16_t)n;
    d->free_len--;
    heap_push(d, index);
  }
}

/* Sends what is due; returns nanoseconds until the next frame is (or UINT64_MAX for none). */
static uint64_t release(struct direction *d, uint64_t now) {
  while (d->heap_len) {
    int top = d->heap[0];
    struct frame *f = &d->pool[top];
    if (f->due_ns > now) return f->due_ns - now;
    heap_pop(d);
    d->free_list[d->free_len++] = top;
    if (partition) { d->partitioned++; continue; }
    if (write(d->out_fd, f->bytes, f->length) == (ssize_t)f->length) d->sent++;
    else d->write_failed++;
  }
  return UINT64_MAX;
}

static void print_stats(const struct direction *ab, const struct direction *ba) {
  const struct direction *ds[2] = { ab, ba };
  printf("{\"partition\":%s,\"realtime\":%s,\"delayMs\":%g,\"jitterMs\":%g,\"lossPercent\":%g", partition ? "true" : "false",
    realtime ? "true" : "false", delay_ms, jitter_ms, loss_percent);
  for (int i = 0; i < 2; i++) {
    const struct direction *d = ds[i];
    printf(",\"%s\":{\"received\":%llu,\"lost\":%llu,\"partitioned\":%llu,\"overflow\":%llu,\"sent\":%llu,\"writeFailed\":%llu,\"queued\":%d}",
      i == 0 ? "aToB" : "bToA", (unsigned long long)d->received, (unsigned long long)d->lost, (unsigned long long)d->partitioned,
      (unsigned long long)d->overflow, (unsigned long long)d->sent, (unsigned long long)d->write_failed, d->heap_len);
  }
  printf("}\n");
  fflush(stdout);
}

static int command(const char *line, struct direction *ab, struct direction *ba) {
  double d, j, l;
  if (sscanf(line, "set %lf %lf %lf", &d, &j, &l) == 3 && d >= 0 && j >= 0 && l >= 0 && l <= 100) {
    delay_ms = d;
    jitter_ms = j;
    loss_percent = l;
  } else if (strcmp(line, "partition on") == 0) {
    partition = 1;
  } else if (strcmp(line, "partition off") == 0) {
    partition = 0;
  } else if (strcmp(line, "stats") == 0) {
    print_stats(ab, ba);
    return 0;
  } else {
    printf("{\"error\":\"unknown command\"}\n");
    fflush(stdout);
    return 0;
  }
  printf("{\"ok\":true}\n");
  fflush(stdout);
  return 0;
}

static void on_signal(int s) {
  (void)s;
  stopping = 1;
}

static int init_direction(struct direction *d, int in_fd, int out_fd) {
  memset(d, 0, sizeof *d);
  d->in_fd = in_fd;
  d->out_fd = out_fd;
  d->pool = malloc(sizeof(struct frame) * QUEUE_MAX);
  if (!d->pool) return -1;
  for (int i = 0; i < QUEUE_MAX; i++) d->free_list[i] = QUEUE_MAX - 1 - i;
  d->free_len = QUEUE_MAX;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 7) {
    fprintf(stderr, "usage: %s TAP_A TAP_B [delay_ms jitter_ms loss_percent seed]\n", argv[0]);
    return 2;
  }
  rng_state = 0x9e3779b97f4a7c15ull;
  if (argc == 7) {
    delay_ms = atof(argv[3]);
    jitter_ms = atof(argv[4]);
    loss_percent = atof(argv[5]);
    uint64_t seed = strtoull(argv[6], NULL, 10);
    if (seed) rng_state = seed;
  }
  int a = open_tap(argv[1]), b = open_tap(argv[2]);
  if (a < 0 || b < 0) {
    fprintf(stderr, "relay: cannot create TAP devices %s, %s: %s\n", argv[1], argv[2], strerror(errno));
    return 1;
  }
  static struct direction ab, ba;
  if (init_direction(&ab, a, b) || init_direction(&ba, b, a)) {
    fprintf(stderr, "relay: out of memory\n");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  /*
   * A wire is never late because the machine is busy: on a loaded host the relay runs at a (low) real-time priority
   * when it may, so its own scheduling delay does not add to the delay it was asked for. It blocks in poll otherwise.
   */
  struct sched_param sp;
  memset(&sp, 0, sizeof sp);
  sp.sched_priority = 1;
  realtime = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
  printf("ready\n");
  fflush(stdout);

  char line[256];
  size_t line_len = 0;
  while (!stopping) {
    uint64_t now = now_ns();
    uint64_t wait_ab = release(&ab, now), wait_ba = release(&ba, now);
    uint64_t wait = wait_ab < wait_ba ? wait_ab : wait_ba;
    struct pollfd fds[3] = { { a, POLLIN, 0 }, { b, POLLIN, 0 }, { 0, POLLIN, 0 } };
    /* Round up so a frame is never sent early; -1 blocks until a frame or a command comes. */
    int timeout = wait == UINT64_MAX ? -1 : (int)((wait + 999999) / 1000000);
    if (poll(fds, 3, timeout) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents & POLLIN) take(&ab);
    if (fds[1].revents & POLLIN) take(&ba);
    if (fds[2].revents & (POLLIN | POLLHUP)) {
      char chunk[256];
      ssize_t n = read(0, chunk, sizeof chunk);
      if (n == 0) break;
      for (ssize_t i = 0; i < n; i++) {
        if (chunk[i] == '\n') {
          line[line_len] = 0;
          command(line, &ab, &ba);
          line_len = 0;
        } else if (line_len < sizeof line - 1) {
          line[line_len++] = chunk[i];
        }
      }
    }
  }
  close(a);
  close(b);
  return 0;
}
