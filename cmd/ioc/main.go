// Command ioc is the analytics backend of a city's intelligent operations
// center: one binary with subcommands (serve, demo, sim, migrate, token,
// reference, version). Configuration comes from flags and IOC_* environment
// variables; see docs/operations.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ioc:", err)
		os.Exit(1)
	}
}

const usage = `ioc — analytics backend of a city's intelligent operations center

Usage: ioc <command> [flags]

Commands:
  serve      run a node: HTTP API, NATS intake, writer (embedded NATS unless IOC_NATS_URL)
  demo       run everything on this machine: a private ClickHouse, a node, the simulator
  sim        feed a running node with a simulated city (or a scenario)
  migrate    apply the ClickHouse schema migrations and exit
  token      print a signed token for a role
  reference  export or replace reference data (units, procedures, officers, cameras, calendar)
  bench      measure intake → ClickHouse throughput and latency on this machine
             ('bench arrow' measures the Arrow backfill)
             ('bench sql' measures the SQL API's export against clickhouse-client)
             ('bench ws' measures event → websocket latency and the fan-out to many clients)
  version    print the version

Run 'ioc <command> -h' for the flags of a command.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	if err := checkEnv(getenv); err != nil {
		return err
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, getenv, stdout, stderr)
	case "sim":
		return runSim(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "token":
		return runToken(ctx, rest, getenv, stdout, stderr)
	case "reference":
		return runReference(ctx, rest, getenv, stdout, stderr)
	case "bench":
		if len(rest) > 0 && rest[0] == "arrow" {
			return runBenchArrow(ctx, rest[1:], stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "sql" {
			return runBenchSQL(ctx, rest[1:], stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "ws" {
			return runBenchWS(ctx, rest[1:], stdout, stderr)
		}
		return runBench(ctx, rest, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "ioc", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

var version = "dev"
