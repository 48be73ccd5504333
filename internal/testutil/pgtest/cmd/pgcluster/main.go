// Command pgcluster starts and stops a throwaway PostgreSQL cluster for
// test scripts, so that every test package can share one:
//
//	export FLOWGATE_TEST_POSTGRES=$(go run ./internal/testutil/pgtest/cmd/pgcluster start "$dir")
//	go test ./...
//	go run ./internal/testutil/pgtest/cmd/pgcluster stop "$dir"
//
// start creates the cluster in DIR (empty or absent), leaves it running
// and prints its superuser DSN. stop stops it and removes DIR. The cluster
// runs without fsync: it is for tests only.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "start" && os.Args[1] != "stop") {
		fmt.Fprintln(os.Stderr, "usage: pgcluster start|stop DIR")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := os.Args[2]
	switch os.Args[1] {
	case "start":
		c, err := pgtest.Start(ctx, dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(c.DSN)
	case "stop":
		if err := pgtest.StopDir(ctx, dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
