package agent

import (
	"crypto/tls"
	"log/slog"

	"github.com/omegacell/omegacell/proto/credentials"
)

// useCredentials resolves how the agent (or, with fleet, a simulated
// fleet named sender) connects, and sets up its heartbeats: their subject,
// and TLS with the same client certificate towards NATS. A bundle whose
// identity does not speak for the machines is used anyway, with a
// warning: the cell refuses what it may not do.
func useCredentials(log *slog.Logger, c credentials.Client, hb *heartbeater, sender string, fleet bool) (credentials.Client, error) {
	c, err := c.Resolve("")
	if err != nil {
		return c, err
	}
	hb.sender, hb.fleetSender = sender, fleet
	c.Log(log, "agent")
	if c.Bundle == nil {
		return c, nil
	}
	b := c.Bundle
	hb.natsTLS = func(url string) *tls.Config { return b.ClientTLS(credentials.ServerName(url)) }
	id := b.Identity
	if fleet && !(id.Fleet && id.Name == sender) || !fleet && !id.SpeaksFor(sender) {
		want := "agent/" + sender
		if fleet {
			want += " (fleet)"
		}
		log.Warn("the credential does not speak for these machines; the cell will refuse what it may not do", "identity", id.String(), "want", want, "credentials", b.Describe())
	}
	return c, nil
}
