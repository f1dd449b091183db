package cli

import (
	"cmp"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

// CredentialsCommand returns `credentials` with issue, revoke and
// revoked. dial reaches the cell (as an admin); with a nil dial the
// command gets its own --server and credential flags.
func CredentialsCommand(dial Dialer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Issue and revoke credentials of the cell (admin only)",
		Long: `Credentials say who a client of the cell is: admin, scheduler/NAME,
agent/MACHINE (or a simulated fleet's agent) or user/NAME with its tenants.
A credential is a directory with ca.pem, cert.pem and key.pem; every cell
command takes one with --credentials DIR (or $` + credentials.Env + `, or
./` + credentials.DefaultDir + `, the admin bundle the cell writes).`,
		Args: cobra.NoArgs,
	}
	if dial == nil {
		dial = ServerFlag(cmd.PersistentFlags())
	}
	c := &credentialCommands{dial: dial, format: addOutputFlag(cmd)}
	cmd.AddCommand(c.issueCommand(), c.revokeCommand(), c.revokedCommand())
	return cmd
}

type credentialCommands struct {
	dial   Dialer
	format func() (outputFormat, error)
}

func (c *credentialCommands) issueCommand() *cobra.Command {
	var (
		role, name, out string
		tenants         []string
		fleet           bool
		ttl             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue --role admin|scheduler|agent|user --name NAME [--tenant T]... [--fleet] --out DIR",
		Short: "Create a key here and have the cell certify it for an identity",
		Long: `Creates a private key in --out (never sent anywhere), asks the cell to certify
it for the identity (only an admin may), and writes the bundle: ca.pem,
cert.pem, key.pem (0600) in --out (0700).

  --role scheduler --name NAME   a scheduler: commits for jobs that name it
  --role agent --name MACHINE    the agent of one machine
  --role agent --name P --fleet  a simulated fleet (cell agent --simulate N --name P)
  --role user --name NAME --tenant T...   a person, acting within tenants
  --role admin                   everything`,
		Example: `  cell credentials issue --role scheduler --name lowest-id --out ./lowest-id
  cell credentials issue --role user --name alice --tenant ml --out ./alice --ttl 720h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required: the directory to write the bundle to")
			}
			if _, err := os.Stat(filepath.Join(out, credentials.KeyFile)); err == nil {
				return fmt.Errorf("--out %s already holds a %s; choose another directory (a credential is never overwritten)", out, credentials.KeyFile)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("--out: %w", err)
			}
			var id identity.Identity
			var err error
			if fleet {
				if role != string(identity.Agent) || len(tenants) > 0 {
					return errors.New("--fleet: only with --role agent and without --tenant")
				}
				id, err = identity.NewFleet(name)
			} else {
				id, err = identity.New(identity.Role(role), name, tenants...)
			}
			if err != nil {
				return fmt.Errorf("--role/--name/--tenant: %w", err)
			}
			if ttl < 0 {
				return fmt.Errorf("--ttl %v is negative", ttl)
			}
			s, err := openSession(cmd, c.dial, c.format)
			if err != nil {
				return err
			}
			defer s.Close()
			b, caPEM, certPEM, keyPEM, err := credentials.Request(s.ctx, s.conn, id, ttl)
			if err != nil {
				return rpcError("credentials issue", err)
			}
			if err := credentials.Write(out, caPEM, certPEM, keyPEM); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, serial %s, expires %s\n",
				out, describeIdentity(b.Identity), credentials.Serial(b.Leaf), b.Leaf.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "admin, scheduler, agent or user")
	f.StringVar(&name, "name", "", "scheduler name, machine id (fleet: machine name prefix) or user name; none for admin")
	f.StringSliceVar(&tenants, "tenant", nil, "a tenant the user belongs to (repeatable)")
	f.BoolVar(&fleet, "fleet", false, "an agent credential for a simulated fleet: machines NAME-<digits>")
	f.StringVar(&out, "out", "", "directory to write ca.pem, cert.pem and key.pem to")
	f.DurationVar(&ttl, "ttl", 0, "lifetime (default: the cell's, one year)")
	_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"admin", "scheduler", "agent", "user"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (c *credentialCommands) revokeCommand() *cobra.Command {
	var serial string
	cmd := &cobra.Command{
		Use:   "revoke (DIR | CERT.pem | --serial HEX)",
		Short: "Make a credential unusable at once",
		Long: `Revokes a credential: from now on the cell refuses every connection and
every call that presents it (and NATS every new connection). Name it by its
bundle directory, its certificate file, or its serial number (hex, as
` + "`credentials issue`" + ` printed it).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &cellv1.RevokeCredentialRequest{Serial: serial}
			switch {
			case len(args) == 1 && serial != "":
				return errors.New("name the credential by a path or by --serial, not both")
			case len(args) == 1:
				cert, err := readCertificate(args[0])
				if err != nil {
					return err
				}
				req.Serial = credentials.Serial(cert)
				req.NotAfterUnix = cert.NotAfter.Unix()
				if id, err := identity.FromCertificate(cert); err == nil {
					req.Identity = id.String()
				}
			case serial == "":
				return errors.New("name the credential: a bundle directory, a cert.pem, or --serial HEX")
			}
			s, err := openSession(cmd, c.dial, c.format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewCredentialServiceClient(s.conn).RevokeCredential(s.ctx, req)
			if err != nil {
				return rpcError("credentials revoke", err)
			}
			if resp.Revoked {
				fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", req.Serial)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s was revoked already\n", req.Serial)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&serial, "serial", "", "serial number of the certificate (lower-case hex)")
	return cmd
}

func (c *credentialCommands) revokedCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "revoked",
		Short: "List the revoked credentials that have not expired",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, c.dial, c.format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewCredentialServiceClient(s.conn).ListRevokedCredentials(s.ctx, &cellv1.ListRevokedCredentialsRequest{})
			if err != nil {
				return rpcError("credentials revoked", err)
			}
			if s.format != formatTable {
				return writeProto(cmd.OutOrStdout(), s.format, resp)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SERIAL\tIDENTITY\tREVOKED\tEXPIRES")
			for _, r := range resp.Revoked {
				expires := "-"
				if r.NotAfterUnix > 0 {
					expires = time.Unix(r.NotAfterUnix, 0).UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Serial, cmp.Or(r.Identity, "-"), time.Unix(r.RevokedUnix, 0).UTC().Format(time.RFC3339), expires)
			}
			return w.Flush()
		},
	}
}

// readCertificate reads a certificate file, or the cert.pem of a bundle
// directory.
func readCertificate(path string) (*x509.Certificate, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, credentials.CertFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

func describeIdentity(id identity.Identity) string {
	s := id.String()
	if id.Fleet {
		s += " (fleet: machines " + id.Name + "-<digits>)"
	}
	if len(id.Tenants) > 0 {
		s += fmt.Sprintf(" (tenants %v)", id.Tenants)
	}
	return s
}
