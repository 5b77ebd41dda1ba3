/* server.h — `gatehouse run`: the main thread. Loads the configuration,
 * binds listeners, starts the workers, then handles signals: SIGHUP reload,
 * SIGTERM/SIGINT drain, SIGUSR1 log reopen (SPEC §1, §9). */
#ifndef GH_SERVER_SERVER_H
#define GH_SERVER_SERVER_H

typedef struct gh_run_options {
    const char *config;           /* NULL = embedded demo */
    int workers;                  /* 0 = from the configuration */
    int log_level;                /* -1 = from the configuration */
} gh_run_options;

/* Returns the process exit code (SPEC §1). */
int gh_server_run(const gh_run_options *o);

#endif
