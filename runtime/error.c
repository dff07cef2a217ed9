/* error.c — the thread-local error message and Ctrl-C (an op fails "interrupted").
 *
 * Every failing entry point calls ms_fail(), which formats the message that
 * ms_last_error() returns until the next failure on the same thread. The argument
 * checks that build most messages are in check.c, the thread pool in threads.c, dtype
 * and device names in dtype.c. */
#include "internal.h"
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static _Thread_local char ms_error_buf[1024] = "no error";

const char *ms_last_error(void) { return ms_error_buf; }
int ms_abi_version(void) { return MS_ABI_VERSION; }

int ms_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ms_error_buf, sizeof ms_error_buf, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---- Ctrl-C ------------------------------------------------------------------------
 * Only a flag is set in the handler (async-signal-safe); ops fail on entry while it
 * is set, which unwinds a running Lua computation as an ordinary error. */
volatile int ms_interrupt_flag = 0;
static struct sigaction ms_old_sigint;
static int ms_sigint_installed = 0;
static char ms_hint[512];
static volatile sig_atomic_t ms_hint_len = 0, ms_hint_written = 0;

/* The flag counts presses not yet handled. A Lua loop that calls no op and runs
 * JIT-compiled (where debug hooks never fire) cannot see it, so the third pending
 * press falls back to the default action and ends the process. */
static void ms_on_sigint(int sig) {
  int presses = ++ms_interrupt_flag;
  if (presses == 1 && ms_hint_len > 0) {   /* write(2) is async-signal-safe */
    ssize_t rc = write(2, ms_hint, ms_hint_len);
    (void)rc;
    ms_hint_len = 0;
    ms_hint_written = 1;
  }
  if (presses >= 3) {
    signal(sig, SIG_DFL);
    raise(sig);
  }
}

/* A line the handler writes to stderr on the next first press (once), for the REPL's
 * hint that a JIT-compiled pure-Lua loop cannot see Ctrl-C: it must appear while such a
 * loop runs, when no Lua code can print it. NULL (or "") withdraws it. Returns 1 when the
 * previous hint was written by the handler. */
int ms_sigint_hint(const char *text) {
  int written = ms_hint_written;
  ms_hint_len = 0;                         /* the handler stops reading ms_hint first */
  ms_hint_written = 0;
  size_t n = text ? strlen(text) : 0;
  if (n > sizeof ms_hint - 2) n = sizeof ms_hint - 2;
  if (n > 0) {
    memcpy(ms_hint, text, n);
    ms_hint[n] = '\n';
    ms_hint_len = (sig_atomic_t)(n + 1);
  }
  return written;
}

void ms_sigint_install(void) {
  if (ms_sigint_installed) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = ms_on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &ms_old_sigint);
  ms_sigint_installed = 1;
}

void ms_sigint_uninstall(void) {
  if (!ms_sigint_installed) return;
  sigaction(SIGINT, &ms_old_sigint, NULL);
  ms_sigint_installed = 0;
}

int ms_interrupt_pending(void) { return ms_interrupt_flag; }
void ms_interrupt_clear(void) { ms_interrupt_flag = 0; }

int ms_fail_interrupted(const char *fn) {
  ms_interrupt_flag = 0;
  return ms_fail("%s: interrupted (Ctrl-C)", fn);
}
