package load

import (
	"context"
	"fmt"
	"time"

	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

// client is how a part of the benchmark connects as id: insecure when the
// run is; with a credential issued in memory by the in-process cell's CA;
// or, against an external cell, with one requested from it over the
// admin bundle's connection (the admin itself uses that bundle).
func (r *rig) client(ctx context.Context, id identity.Identity) (credentials.Client, error) {
	switch {
	case r.cfg.Insecure:
		return credentials.Client{Insecure: true}, nil
	case r.server != nil:
		return r.server.Client(id)
	}
	admin, err := credentials.Client{}.Resolve(r.cfg.Credentials)
	if err != nil {
		return admin, fmt.Errorf("--credentials: %w", err)
	}
	if id.Role == identity.Admin || r.conn == nil {
		return admin, nil
	}
	b, _, _, _, err := credentials.Request(ctx, r.conn, id, 24*time.Hour)
	if err != nil {
		return credentials.Client{}, fmt.Errorf("a credential for %s from the cell: %w", id, err)
	}
	return credentials.Client{Bundle: b}, nil
}
