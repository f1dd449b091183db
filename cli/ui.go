package cli

import (
	"cmp"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/login"
)

// WebEnv names the environment variable of the web view's address.
const WebEnv = "CELL_WEB"

// DefaultWebURL is where `cell server` serves the web view by default
// (its --metrics address).
const DefaultWebURL = "http://127.0.0.1:7071/"

// UICommand returns `cell ui`: a login link to the cell's web view, made
// with the caller's credential (package proto/login), printed, and opened
// in a browser only when asked.
func UICommand() *cobra.Command {
	var web string
	var ttl time.Duration
	var open bool
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Print a login link to the cell's web view (and open it with --open)",
		Long: `Prints a link that logs a browser into the cell's web view (served by
cell server on its --metrics address) as the identity of your credential:
an admin sees and may do everything, a user sees its tenants' jobs and may
stop them. The link holds a token signed with your credential's key; it
works once and expires after --ttl (at most 15m). The browser then keeps a
session (an HttpOnly cookie) for 12 hours, or until the credential expires
or is revoked.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&web, "web", cmp.Or(strings.TrimSpace(os.Getenv(WebEnv)), DefaultWebURL), "the web view's URL (env "+WebEnv+")")
	f.DurationVar(&ttl, "ttl", 5*time.Minute, "how long the link may be used (at most 15m)")
	f.BoolVar(&open, "open", false, "also open the link in this machine's browser")
	creds := CredentialFlags(f)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		link, err := LoginURL(web, creds, ttl)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), link)
		if open {
			return openBrowser(link)
		}
		return nil
	}
	return cmd
}

// LoginURL is the web view's login link for the credential creds finds;
// an insecure client gets the plain URL (every browser is admin there).
func LoginURL(web string, creds func() (credentials.Client, error), ttl time.Duration) (string, error) {
	u, err := url.Parse(web)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--web %q: want http://host:port/", web)
	}
	c, err := creds()
	if err != nil {
		return "", err
	}
	if c.Insecure {
		u.Path = "/"
		return u.String(), nil
	}
	token, err := login.Token(c.Bundle, ttl, time.Now())
	if err != nil {
		return "", err
	}
	u.Path = "/login"
	u.RawQuery = url.Values{"token": {token}}.Encode()
	return u.String(), nil
}

func openBrowser(link string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", link)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", link)
	default:
		cmd = exec.Command("xdg-open", link)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("--open: %w (open the link above yourself)", err)
	}
	return cmd.Process.Release() // the browser outlives the command
}
