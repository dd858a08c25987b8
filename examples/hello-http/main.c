/* hello-http: a tiny static HTTP server. Every request gets the contents of /www/msg.txt. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PORT 8080

static void on_term(int sig) {
    (void)sig;
    _exit(0);
}

int main(void) {
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    int server = socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(PORT);
    if (bind(server, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(server, 16) != 0) {
        perror("hello-http: cannot listen");
        return 1;
    }
    printf("hello-http listening on :%d\n", PORT);
    fflush(stdout);
    for (;;) {
        int client = accept(server, NULL, NULL);
        if (client < 0) continue;
        char request[2048];
        (void)read(client, request, sizeof request);
        char body[4096];
        size_t length = 0;
        FILE *file = fopen("/www/msg.txt", "r");
        if (file) {
            length = fread(body, 1, sizeof body, file);
            fclose(file);
        }
        char head[256];
        int head_length = snprintf(head, sizeof head,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n", length);
        (void)write(client, head, (size_t)head_length);
        (void)write(client, body, length);
        close(client);
    }
}
