/* The worker pool: a few threads running jobs from one FIFO queue. */
#include "core/core.h"

#include <errno.h>
#include <stdlib.h>

struct lumio_workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    lumio_job *head, *tail;
    bool stop;
    unsigned n;
    pthread_t threads[];
};

static void *worker_main(void *arg) {
    lumio_workers *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
        lumio_job *j = w->head;
        if (!j) break; /* stop, and the queue is empty */
        w->head = j->next;
        if (!w->head) w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        j->run(j);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int lumio__workers_create(lumio_workers **out, unsigned n) {
    if (n == 0) n = 1;
    lumio_workers *w = calloc(1, sizeof(*w) + n * sizeof(pthread_t));
    if (!w) return -ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (unsigned i = 0; i < n; i++) {
        int rc = lumio__thread_create(&w->threads[i], worker_main, w);
        if (rc != 0) {
            w->n = i;
            lumio__workers_destroy(w);
            return -rc;
        }
    }
    w->n = n;
    *out = w;
    return 0;
}

void lumio__workers_push(lumio_workers *w, lumio_job *j) {
    j->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

bool lumio__workers_run_one(lumio_workers *w) {
    pthread_mutex_lock(&w->mu);
    lumio_job *j = w->head;
    if (j) {
        w->head = j->next;
        if (!w->head) w->tail = NULL;
    }
    pthread_mutex_unlock(&w->mu);
    if (j) j->run(j);
    return j != NULL;
}

void lumio__workers_destroy(lumio_workers *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->n; i++) pthread_join(w->threads[i], NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
