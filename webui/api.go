package webui

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// The JSON endpoints: each calls the API in process as the browser's
// identity and answers what the API answered (protojson), or its refusal
// with the matching HTTP status.

const callTimeout = 15 * time.Second

func (u *UI) ctx(r *http.Request, id identity.Identity) (context.Context, context.CancelFunc) {
	return context.WithTimeout(identity.NewContext(r.Context(), id), callTimeout)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Write(b)
}

func writeAPIError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	code := http.StatusInternalServerError
	switch st.Code() {
	case codes.InvalidArgument, codes.OutOfRange:
		code = http.StatusBadRequest
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.PermissionDenied:
		code = http.StatusForbidden
	case codes.Unauthenticated:
		code = http.StatusUnauthorized
	case codes.FailedPrecondition, codes.AlreadyExists, codes.Aborted:
		code = http.StatusConflict
	case codes.Unavailable, codes.DeadlineExceeded:
		code = http.StatusServiceUnavailable
	}
	writeError(w, code, st.Message())
}

var pj = protojson.MarshalOptions{UseProtoNames: false, EmitUnpopulated: false}

func writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := pj.Marshal(m)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// me: who the browser is, and what it may do (the page hides actions the
// API would refuse; the API refuses them anyway).
func (u *UI) me(w http.ResponseWriter, r *http.Request, id identity.Identity) {
	writeJSON(w, map[string]any{
		"identity": id.String(), "role": string(id.Role), "tenants": id.Tenants, "admin": id.Role == identity.Admin,
		"insecure": u.opts.Roots == nil,
	})
}

// maxTasksShown bounds the tasks a job page gets (the counts cover all).
const maxTasksShown = 2000

func (u *UI) job(w http.ResponseWriter, r *http.Request, id identity.Identity) {
	ctx, cancel := u.ctx(r, id)
	defer cancel()
	resp, err := u.opts.API.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: r.URL.Query().Get("id"), IncludeTasks: true})
	if err != nil {
		writeAPIError(w, err)
		return
	}
	if len(resp.Tasks) > maxTasksShown {
		// Those the page most needs: not done first, then by index.
		sort.SliceStable(resp.Tasks, func(a, b int) bool {
			return bucket(resp.Tasks[a].State) < bucket(resp.Tasks[b].State) && bucket(resp.Tasks[a].State) != bDone
		})
		resp.Tasks = resp.Tasks[:maxTasksShown]
	}
	writeProto(w, resp)
}

func (u *UI) machine(w http.ResponseWriter, r *http.Request, id identity.Identity) {
	ctx, cancel := u.ctx(r, id)
	defer cancel()
	resp, err := u.opts.API.GetMachine(ctx, &cellv1.GetMachineRequest{Id: r.URL.Query().Get("id")})
	if err != nil {
		writeAPIError(w, err)
		return
	}
	writeProto(w, resp)
}

// logs: a task's output after offset (or its tail); the page follows a
// task by asking again with the offset after what it shows.
func (u *UI) logs(w http.ResponseWriter, r *http.Request, id identity.Identity) {
	q := r.URL.Query()
	index, err := strconv.ParseUint(q.Get("task"), 10, 32)
	if err != nil {
		writeError(w, http.StatusBadRequest, "task: not an index")
		return
	}
	req := &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: q.Get("job"), Index: uint32(index)}, TailBytes: 64 << 10}
	if q.Get("stream") == "stderr" {
		req.Stream = cellv1.LogStream_LOG_STREAM_STDERR
	}
	if s := q.Get("offset"); s != "" {
		off, err := strconv.ParseInt(s, 10, 64)
		if err != nil || off < 0 {
			writeError(w, http.StatusBadRequest, "offset: not a byte offset")
			return
		}
		req.Offset = &off
	}
	ctx, cancel := u.ctx(r, id)
	defer cancel()
	resp, err := u.opts.API.GetTaskLogs(ctx, req)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	// Cut at a rune boundary; the next read starts where this one ends.
	data := resp.Data
	for len(data) > 0 && !utf8.Valid(data) && len(resp.Data)-len(data) < 4 {
		data = data[:len(data)-1]
	}
	if len(data) == 0 || !utf8.Valid(data) {
		data = resp.Data
	}
	writeJSON(w, map[string]any{
		"text": strings.ToValidUTF8(string(data), "\uFFFD"), "offset": resp.Offset, "next": resp.Offset + int64(len(data)),
		"size": resp.Size, "attempt": resp.Attempt, "state": resp.TaskState.String(),
	})
}

type actionRequest struct {
	Job     string `json:"job"`
	Machine string `json:"machine"`
	Drain   bool   `json:"drain"`
}

func readAction(w http.ResponseWriter, r *http.Request) (*actionRequest, bool) {
	var a actionRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&a); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return nil, false
	}
	return &a, true
}

func (u *UI) stop(w http.ResponseWriter, r *http.Request, id identity.Identity) {
	a, ok := readAction(w, r)
	if !ok {
		return
	}
	ctx, cancel := u.ctx(r, id)
	defer cancel()
	resp, err := u.opts.API.StopJob(ctx, &cellv1.StopJobRequest{IdOrName: a.Job})
	if err != nil {
		writeAPIError(w, err)
		return
	}
	u.opts.Log.Info("web view: job stopped", "job", resp.GetJob().GetId(), "by", id.String())
	writeJSON(w, map[string]any{"job": resp.GetJob().GetId(), "revision": resp.Revision})
}

func (u *UI) drain(w http.ResponseWriter, r *http.Request, id identity.Identity) {
	a, ok := readAction(w, r)
	if !ok {
		return
	}
	ctx, cancel := u.ctx(r, id)
	defer cancel()
	resp, err := u.opts.API.DrainMachine(ctx, &cellv1.DrainMachineRequest{Id: a.Machine, Drain: a.Drain})
	if err != nil {
		writeAPIError(w, err)
		return
	}
	u.opts.Log.Info("web view: machine drain set", "machine", a.Machine, "drain", a.Drain, "by", id.String())
	writeProto(w, resp)
}

// tenants: the tenants the API shows this identity (a user: its own),
// with their quotas and usage as the API computes them (quota, in use,
// borrowed, dominant share per band).
func (u *UI) tenants(w http.ResponseWriter, r *http.Request, id identity.Identity) {
	ctx, cancel := u.ctx(r, id)
	defer cancel()
	resp, err := u.opts.API.ListTenants(ctx, &cellv1.ListTenantsRequest{})
	if err != nil {
		writeAPIError(w, err)
		return
	}
	writeProto(w, resp)
}
