// Command mutate applies each deliberate break in docs/mutations.txt to a
// throwaway copy of the tree, runs the tests the entry names, and reports
// every break that no test caught. Run it before a release and after
// adding or changing a guarantee (make mutate).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"github.com/linepipe/linepipe/pkg/mutate"
)

func main() {
	list := flag.String("list", "docs/mutations.txt", "the mutation list")
	only := flag.String("only", "", "run only mutations whose name matches this regexp")
	timeout := flag.Duration("timeout", 6*time.Minute, "go test timeout per mutation")
	keep := flag.Bool("keep", false, "keep the throwaway copy")
	verbose := flag.Bool("v", false, "print go test's output")
	check := flag.Bool("check", false, "only check that every snippet still matches its file once")
	flag.Parse()
	os.Exit(run(*list, *only, *timeout, *keep, *verbose, *check))
}

func run(list, only string, timeout time.Duration, keep, verbose, check bool) int {
	data, err := os.ReadFile(list)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ms, err := mutate.Parse(data)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", list, err)
		return 2
	}
	sel := regexp.MustCompile(only)
	if check {
		return checkAnchors(ms)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "linepipe-mutate-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if keep {
		fmt.Println("copy kept in", work)
	} else {
		defer os.RemoveAll(work)
	}
	root, _ := os.Getwd()
	r := &mutate.Runner{Root: root, Work: work, Timeout: timeout}
	if verbose {
		r.Log = os.Stdout
	}
	if err := r.Copy(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	bad := 0
	for _, m := range ms {
		if !sel.MatchString(m.Name) || ctx.Err() != nil {
			continue
		}
		res := r.Run(ctx, m)
		flux := ""
		if m.Flux {
			flux = " [code in flux]"
		}
		fmt.Printf("%-11s %-34s %6.1fs  %s%s\n", res.Verdict, m.Name, res.Took.Seconds(), res.Detail, flux)
		if res.Verdict != mutate.Caught {
			bad++
			fmt.Printf("            guarantee: %s (%s)\n", m.Guarantee, m.Source)
		}
	}
	if bad > 0 {
		fmt.Printf("%d break(s) not caught or not applied\n", bad)
		return 1
	}
	fmt.Println("every break was caught")
	return 0
}

// checkAnchors reports every entry whose snippets no longer match.
func checkAnchors(ms []mutate.Mutation) int {
	bad := 0
	for _, m := range ms {
		for _, e := range m.Edits {
			src, err := os.ReadFile(e.File)
			if err == nil {
				_, err = e.Apply(src)
			}
			if err != nil {
				bad++
				fmt.Printf("%-34s line %d: %v\n", m.Name, m.Line, err)
			}
		}
	}
	fmt.Printf("%d entries, %d snippet(s) to re-anchor\n", len(ms), bad)
	if bad > 0 {
		return 1
	}
	return 0
}
