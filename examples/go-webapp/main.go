// The article's Go service: an HTTP server on :8080 that answers with one message.
package main

import (
	"fmt"
	"log"
	"net/http"
)

const message = "hello from go-webapp"

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, message)
	})
	log.Println("listening on :8080")
	log.Fatal(http.ListenAndServe(":8080", nil))
}
