package webui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/login"
)

// browserless is an HTTP client with a cookie jar (a browser's session
// without the browser), logged in with b when b is not nil.
func browserless(t *testing.T, c *testCell, b *credentials.Bundle) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	if b != nil {
		resp, err := hc.Get(c.loginURL(t, b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("login: %s", resp.Status)
		}
	}
	return hc
}

func call(t *testing.T, hc *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Omegacell", "1")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// firstRows reads the event stream until its "full" event and returns the
// names of the jobs in it.
func firstRows(t *testing.T, hc *http.Client, url string) (jobs []string, machines int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/events", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 64<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
		} else if d, ok := strings.CutPrefix(line, "data: "); ok && event == "full" {
			var rows struct {
				Machines [][]any `json:"machines"`
				Jobs     [][]any `json:"jobs"`
			}
			if err := json.Unmarshal([]byte(d), &rows); err != nil {
				t.Fatal(err)
			}
			for _, j := range rows.Jobs {
				jobs = append(jobs, j[1].(string))
			}
			return jobs, len(rows.Machines)
		}
	}
	t.Fatalf("no full event: %v", sc.Err())
	return nil, 0
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A user's session acts with the user's rights, as the API decides them:
// its tenants' jobs (with their secrets) and no one else's, stop only its
// tenants' jobs, no drain; revoking its credential ends the session; a
// token works once and only from this cell's credentials.
func TestUserSessionHasTheUsersRights(t *testing.T) {
	c := shared(t)
	ts := fmt.Sprint(time.Now().UnixNano())
	mine := c.submit(t, &cellv1.JobSpec{Name: "mine-" + ts, Tenant: "ml", Scheduler: "service", Priority: 100, Count: 1, Kind: cellv1.JobKind_JOB_KIND_SERVICE,
		Task: &cellv1.TaskTemplate{Command: "/bin/sleep", Env: map[string]string{"API_KEY": "ml-secret"}, Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 16 << 20},
			Constraints: []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_NOT_IN, Values: []string{"local"}}}}})
	theirs := c.submit(t, &cellv1.JobSpec{Name: "theirs-" + ts, Tenant: "shop", Scheduler: "service", Priority: 100, Count: 1, Kind: cellv1.JobKind_JOB_KIND_SERVICE,
		Task: &cellv1.TaskTemplate{Command: "/bin/sleep", Env: map[string]string{"API_KEY": "shop-secret"}, Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 16 << 20},
			Constraints: []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_NOT_IN, Values: []string{"local"}}}}})
	alice := c.userBundle(t, "alice", "ml")
	hc := browserless(t, c, alice)

	jobs, machines := firstRows(t, hc, c.web)
	if !has(jobs, mine.Spec.Name) || has(jobs, theirs.Spec.Name) {
		t.Errorf("alice's live rows: %v; want %s and not %s", jobs, mine.Spec.Name, theirs.Spec.Name)
	}
	if machines != c.machines {
		t.Errorf("alice's live machines: %d, want %d (users may list machines)", machines, c.machines)
	}
	t.Logf("alice sees jobs %v and %d machines", jobs, machines)
	adminJobs, _ := firstRows(t, browserless(t, c, c.admin), c.web)
	if !has(adminJobs, mine.Spec.Name) || !has(adminJobs, theirs.Spec.Name) {
		t.Errorf("admin's live rows: %v; want both jobs", adminJobs)
	}

	if code, body := call(t, hc, "GET", c.web+"/api/job?id="+mine.Id, ""); code != 200 || !strings.Contains(body, "ml-secret") {
		t.Errorf("alice's own job: %d %.200s", code, body)
	}
	if code, body := call(t, hc, "GET", c.web+"/api/job?id="+theirs.Id, ""); code != 403 || strings.Contains(body, "shop-secret") {
		t.Errorf("another tenant's job: %d %.200s; want 403", code, body)
	}
	if code, _ := call(t, hc, "POST", c.web+"/api/stop", `{"job":"`+theirs.Id+`"}`); code != 403 {
		t.Errorf("stop another tenant's job: %d, want 403", code)
	}
	if code, _ := call(t, hc, "POST", c.web+"/api/drain", `{"machine":"real-1","drain":true}`); code != 403 {
		t.Errorf("drain as a user: %d, want 403", code)
	}
	req, _ := http.NewRequest("POST", c.web+"/api/stop", strings.NewReader(`{"job":"`+mine.Id+`"}`))
	if resp, err := hc.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("an action without the X-Omegacell header: %v %v, want 403", resp.Status, err)
	}
	if code, body := call(t, hc, "POST", c.web+"/api/stop", `{"job":"`+mine.Id+`"}`); code != 200 {
		t.Errorf("stop its own job: %d %s", code, body)
	}
	if st := c.job(t, theirs.Id).Job.State; st == cellv1.JobState_JOB_STATE_STOPPED {
		t.Error("another tenant's job was stopped")
	}
	if st := c.job(t, mine.Id).Job.State; st != cellv1.JobState_JOB_STATE_STOPPED {
		t.Errorf("alice's job: %s, want STOPPED", st)
	}

	// A token works once.
	link := c.loginURL(t, alice)
	for i, want := range []int{200, 401} {
		resp, err := browserless(t, c, nil).Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("login %d with the same token: %s, want %d", i+1, resp.Status, want)
		}
	}
	// Another cell's credential does not log in here.
	other, err := startCell(0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	foreign, err := login.Token(other.admin, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := browserless(t, c, nil).Get(c.web + "/login?token=" + foreign); err != nil || resp.StatusCode != 401 {
		t.Errorf("another cell's admin: %v %v, want 401", resp.Status, err)
	}

	// Revoking alice's credential ends her session at once.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cellv1.NewCredentialServiceClient(c.conn).RevokeCredential(ctx, &cellv1.RevokeCredentialRequest{Serial: credentials.Serial(alice.Leaf)}); err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, hc, "GET", c.web+"/api/me", ""); code != 401 {
		t.Errorf("after revocation: %d, want 401", code)
	}
}
