/* lumio stream recv (stream_recv.c). */
#ifndef LUMIO_CLI_STREAM_RECV_H
#define LUMIO_CLI_STREAM_RECV_H

int stream_recv(int argc, char **argv, const char *usage);

#endif
