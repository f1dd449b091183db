package credentials

import (
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// InsecureWarning is logged at every start of a part running without TLS.
const InsecureWarning = "--insecure: no TLS and no authentication; anyone who reaches the cell's ports can act as admin. Use only on a trusted machine"

// Client is how a client connects to the cell: with a bundle (mutual TLS)
// or, only when asked, without any security.
type Client struct {
	Bundle   *Bundle
	Insecure bool
}

// Resolve returns c when it already says how to connect, and otherwise a
// Client with the bundle Find finds for flag.
func (c Client) Resolve(flag string) (Client, error) {
	if c.Insecure || c.Bundle != nil {
		return c, nil
	}
	b, err := Find(flag)
	if err != nil {
		return Client{}, err
	}
	return Client{Bundle: b}, nil
}

// TransportCredentials are gRPC's transport credentials for a connection
// to addr: TLS 1.3 verifying the server as ServerName(addr), or none.
func (c Client) TransportCredentials(addr string) (grpccreds.TransportCredentials, error) {
	if c.Insecure {
		return insecure.NewCredentials(), nil
	}
	if c.Bundle == nil {
		return nil, errors.New("credentials: no bundle and not --insecure; " + HowToGet)
	}
	return grpccreds.NewTLS(c.Bundle.ClientTLS(ServerName(addr))), nil
}

// DialOption is grpc.WithTransportCredentials of TransportCredentials.
func (c Client) DialOption(addr string) (grpc.DialOption, error) {
	tc, err := c.TransportCredentials(addr)
	if err != nil {
		return nil, err
	}
	return grpc.WithTransportCredentials(tc), nil
}

// Log says how the client connects: a warning when insecure, else the
// identity at debug level.
func (c Client) Log(log *slog.Logger, who string) {
	switch {
	case c.Insecure:
		log.Warn(InsecureWarning, "part", who)
	case c.Bundle != nil:
		log.Debug("credentials", "part", who, "identity", c.Bundle.Describe())
	}
}
