#include "faults.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "fleet/clock.h"
#include "fleet/error.h"

struct sim_command {
  pthread_t thread;
  char *line;
  int status;
  atomic_bool done;
};

static void *command_main(void *arg) {
  sim_command *c = arg;
  int rc = system(c->line);
  c->status = rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
  atomic_store(&c->done, true);
  return NULL;
}

sim_command *sim_command_start(const char *cmd, const char *arg) {
  sim_command *c = calloc(1, sizeof *c);
  size_t len = strlen(cmd) + strlen(arg) + 2;
  if (!c || !(c->line = malloc(len))) {
    free(c);
    return NULL;
  }
  snprintf(c->line, len, "%s %s", cmd, arg);
  if (pthread_create(&c->thread, NULL, command_main, c) != 0) {
    free(c->line);
    free(c);
    return NULL;
  }
  return c;
}

bool sim_command_done(sim_command *c) { return atomic_load(&c->done); }

int sim_command_finish(sim_command *c) {
  if (!c) return -1;
  pthread_join(c->thread, NULL);
  int status = c->status;
  free(c->line);
  free(c);
  return status;
}

static double draw(unsigned *rng) { return (double)rand_r(rng) / ((double)RAND_MAX + 1.0); }

static int by_time(const void *a, const void *b) {
  double x = ((const sim_fault *)a)->at_s, y = ((const sim_fault *)b)->at_s;
  return x < y ? -1 : x > y;
}

/* Returns an array (the caller frees it) whose first min(k, n) entries are
 * distinct indexes below n drawn with rng (a partial Fisher-Yates shuffle);
 * NULL when out of memory. */
static size_t *draw_subset(size_t n, size_t k, unsigned *rng) {
  size_t *order = calloc(n + 1, sizeof *order);
  if (!order) return NULL;
  for (size_t i = 0; i < n; i++) order[i] = i;
  for (size_t i = 0; i < k && i < n; i++) {
    size_t j = i + (size_t)(draw(rng) * (double)(n - i));
    size_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

int sim_fault_plan_make(sim_fault_plan *p, const sim_fault_opts *o, size_t n_devices,
                        double duration_s, unsigned *rng) {
  memset(p, 0, sizeof *p);
  if ((o->hub_restarts && !o->restart_hub_cmd) || (o->broker_restarts && !o->restart_broker_cmd))
    return FL_ERR_INVALID;
  size_t cuts = (size_t)(o->cut_share * (double)n_devices + 0.5);
  size_t skews = o->skew_s != 0 ? (size_t)(o->skew_share * (double)n_devices + 0.5) : 0;
  size_t total = cuts + (size_t)o->power_cuts + (size_t)o->hub_restarts + (size_t)o->broker_restarts;
  p->faults = calloc(total + 1, sizeof *p->faults);
  if (!p->faults) return FL_ERR_NOMEM;
  /* the devices cut, and those whose clock is off: random subsets */
  size_t *cut = draw_subset(n_devices, cuts, rng);
  p->skewed = skews ? draw_subset(n_devices, skews, rng) : NULL;
  if (!cut || (skews && !p->skewed)) {
    free(cut);
    free(p->skewed);
    p->skewed = NULL;
    free(p->faults);
    return FL_ERR_NOMEM;
  }
  for (size_t i = 0; i < cuts && i < n_devices; i++)
    p->faults[p->n++] = (sim_fault){.at_s = draw(rng) * duration_s, .kind = SIM_FAULT_CUT,
                                    .device = cut[i], .seconds = o->cut_s};
  free(cut);
  p->n_skewed = skews < n_devices ? skews : n_devices;
  for (int i = 0; i < o->power_cuts && n_devices; i++)
    p->faults[p->n++] = (sim_fault){.at_s = draw(rng) * duration_s, .kind = SIM_FAULT_POWER,
                                    .device = (size_t)(draw(rng) * (double)n_devices),
                                    .seconds = o->power_off_s};
  for (int i = 0; i < o->hub_restarts; i++)
    p->faults[p->n++] = (sim_fault){.at_s = draw(rng) * duration_s, .kind = SIM_FAULT_RESTART_HUB};
  for (int i = 0; i < o->broker_restarts; i++)
    p->faults[p->n++] = (sim_fault){.at_s = draw(rng) * duration_s, .kind = SIM_FAULT_RESTART_BROKER};
  qsort(p->faults, p->n, sizeof *p->faults, by_time);
  return FL_OK;
}

void sim_fault_plan_skew(const sim_fault_plan *p, const sim_fault_opts *o, sim_device *const *devs) {
  for (size_t i = 0; i < p->n_skewed; i++)
    sim_device_skew(devs[p->skewed[i]], (int64_t)(o->skew_s * 1000));
}

unsigned sim_fault_plan_step(sim_fault_plan *p, const sim_fault_opts *o, double t,
                             sim_device *const *devs) {
  if (p->running && sim_command_done(p->running)) {
    if (sim_command_finish(p->running) != 0) p->failed++;
    p->running = NULL;
  }
  unsigned injected = 0;
  while (p->next < p->n && p->faults[p->next].at_s <= t) {
    const sim_fault *f = &p->faults[p->next];
    if (f->kind == SIM_FAULT_CUT || f->kind == SIM_FAULT_POWER) {
      sim_device *d = devs[f->device];
      int rc = f->kind == SIM_FAULT_CUT ? sim_device_cut(d, f->seconds)
                                        : sim_device_power_cut(d, f->seconds);
      if (rc == FL_OK) {
        injected++;
        if (f->kind == SIM_FAULT_CUT) p->cuts++;
        else p->power_cuts++;
        printf("[%6.1fs] !!!! %s %s for %.1f s\n", t,
               f->kind == SIM_FAULT_CUT ? "network cut:" : "power cut:", d->id, f->seconds);
      }
    } else {
      if (p->running) break; /* one restart at a time: this one waits */
      bool hub = f->kind == SIM_FAULT_RESTART_HUB;
      p->running = sim_command_start(hub ? o->restart_hub_cmd : o->restart_broker_cmd, "term");
      if (p->running) {
        injected++;
        p->restarts++;
        printf("[%6.1fs] !!!! restarting the %s\n", t, hub ? "hub" : "broker");
      } else {
        p->failed++;
      }
    }
    fflush(stdout);
    p->next++;
  }
  return injected;
}

unsigned sim_fault_plan_injected(const sim_fault_plan *p) {
  return p->cuts + p->power_cuts + p->restarts;
}

void sim_fault_plan_free(sim_fault_plan *p) {
  if (p->running && sim_command_finish(p->running) != 0) p->failed++;
  p->running = NULL;
  free(p->faults);
  p->faults = NULL;
  free(p->skewed);
  p->skewed = NULL;
  p->n_skewed = 0;
}
