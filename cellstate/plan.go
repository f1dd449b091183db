package cellstate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// PlanJob answers what SubmitJob would do with spec (issue 13), changing
// nothing: it reads the cell under the read lock, as GetJob does.
func (s *Store) PlanJob(spec *cellv1.JobSpec) *cellv1.PlanJobResponse {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.st
	out := &cellv1.PlanJobResponse{Revision: st.rev, Feasibility: st.feasibility(spec)}
	var j *jobEntry
	if id, ok := st.jobByName[spec.Name]; ok && jobLive(st.jobs[id].job) {
		j = st.jobs[id]
	}
	if j == nil {
		out.Create = spec.Count
		return out
	}
	out.Exists, out.JobId, out.Version = true, j.job.Id, jobVersion(j.job)
	if err := checkUpdate(j, spec); err != nil {
		out.Refused = status.Convert(err).Message()
		return out
	}
	system := jobKind(spec) == cellv1.JobKind_JOB_KIND_SYSTEM
	if system { // its count is its tasks, as updateJob keeps it
		spec = proto.Clone(spec).(*cellv1.JobSpec)
		spec.Count = uint32(len(j.tasks))
	}
	out.Diff = specDiff(j.job.Spec, spec)
	if len(out.Diff) == 0 {
		return out
	}
	live := j.liveSlots()
	templateChanged := !proto.Equal(j.job.Spec.GetTask(), spec.GetTask())
	if system { // one task per machine: a new template replaces them in waves
		if templateChanged {
			out.Replace = live
		} else {
			out.InPlace = live
		}
		return out
	}
	kept := min(live, spec.Count)
	if spec.Count > live {
		out.Create = spec.Count - live
	}
	if live > spec.Count {
		out.Stop = live - spec.Count
	}
	switch {
	case jobKind(spec) == cellv1.JobKind_JOB_KIND_SERVICE && templateChanged:
		out.Replace = kept
	case jobKind(spec) == cellv1.JobKind_JOB_KIND_SERVICE:
		out.InPlace = kept
	default: // batch: only tasks not started yet take the new version
		for i, t := range j.tasks {
			if i < int(spec.Count) && t.t.State == txn.TaskPending {
				out.InPlace++
			}
		}
	}
	return out
}

// feasibility says whether a task of spec fits some machine of the cell
// now and ever (the machine empty), counted and explained by the same
// filters every policy explains pending tasks with (txn.Explainer).
func (s *state) feasibility(spec *cellv1.JobSpec) *cellv1.Feasibility {
	p := newPlacement(spec)
	e := txn.NewExplainer(&txn.Task{Resources: p.res, Constraints: p.cons, MaxPerMachine: p.perM}, spec.Task.GetSpreadKey())
	for _, id := range s.sortedMachineIDs() { // deterministic wording
		e.Add(s.machines[id].m, 0)
	}
	f := &cellv1.Feasibility{MachinesNow: uint32(e.Now.Fit), MachinesEver: uint32(e.Ever.Fit)}
	f.Now, f.Ever = f.MachinesNow > 0, f.MachinesEver > 0
	if !f.Now {
		f.Reason = e.Reason()
	}
	return f
}

// specDiff lists the fields that differ between two specs, by their JSON
// (jobspec) names, leaves first.
func specDiff(a, b *cellv1.JobSpec) []*cellv1.FieldDiff {
	var out []*cellv1.FieldDiff
	diffMessage("", a.ProtoReflect(), b.ProtoReflect(), &out)
	return out
}

func diffMessage(prefix string, a, b protoreflect.Message, out *[]*cellv1.FieldDiff) {
	fields := a.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		path := fd.JSONName()
		if prefix != "" {
			path = prefix + "." + path
		}
		av, bv := a.Get(fd), b.Get(fd)
		has := func(m protoreflect.Message) bool { return m.IsValid() && m.Has(fd) }
		if !has(a) && !has(b) {
			continue
		}
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
			if has(a) && has(b) {
				diffMessage(path, av.Message(), bv.Message(), out)
				continue
			}
		}
		if has(a) && has(b) && av.Equal(bv) {
			continue
		}
		d := &cellv1.FieldDiff{Path: path}
		if has(a) {
			d.Old = valueText(a, fd, av)
		}
		if has(b) {
			d.New = valueText(b, fd, bv)
		}
		*out = append(*out, d)
	}
}

// valueText shows one field's value compactly (messages and lists as
// JSON, enums by name, strings quoted, the rest as Go prints them).
func valueText(parent protoreflect.Message, fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch {
	case fd.FullName() == "cell.v1.TaskTemplate.constraints": // as a spec writes them
		var out []string
		if t, ok := parent.Interface().(*cellv1.TaskTemplate); ok {
			for _, c := range pbconv.Constraints(t.GetConstraints()) {
				out = append(out, c.String())
			}
		}
		return "[" + strings.Join(out, ", ") + "]"
	case fd.IsList() || fd.IsMap() || fd.Kind() == protoreflect.MessageKind:
		m := parent.Type().New()
		m.Set(fd, v)
		b, err := protojson.MarshalOptions{}.Marshal(m.Interface())
		if err != nil {
			return "?"
		}
		var buf bytes.Buffer // protojson's spacing is unstable on purpose
		if json.Compact(&buf, b) != nil {
			return "?"
		}
		s := buf.String()
		// {"name":VALUE} -> VALUE
		if i := strings.IndexByte(s, ':'); i >= 0 && strings.HasSuffix(s, "}") {
			s = s[i+1 : len(s)-1]
		}
		return s
	case fd.Kind() == protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
	case fd.Kind() == protoreflect.StringKind:
		return fmt.Sprintf("%q", v.String())
	}
	return fmt.Sprint(v.Interface())
}

// ListJobVersions returns a job's kept versions, newest first.
func (s *Store) ListJobVersions(idOrName string) (*cellv1.ListJobVersionsResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	j, err := s.st.lookupJob(idOrName)
	if err != nil {
		return nil, err
	}
	out := &cellv1.ListJobVersionsResponse{JobId: j.job.Id, Current: jobVersion(j.job)}
	for i := len(j.versions) - 1; i >= 0; i-- {
		out.Versions = append(out.Versions, j.versions[i])
	}
	return out, nil
}

// versionSpec returns the spec of a kept version (for authorization).
func (s *Store) versionSpec(jobID string, v uint64) (*cellv1.JobSpec, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	j := s.st.jobs[jobID]
	if j == nil {
		return nil, status.Errorf(codes.NotFound, "job %s does not exist", jobID)
	}
	jv := j.version(v)
	if jv == nil {
		return nil, versionNotKept(j, v)
	}
	return jv.Spec, nil
}

func versionNotKept(j *jobEntry, v uint64) error {
	var kept []string
	for _, jv := range j.versions {
		kept = append(kept, fmt.Sprint(jv.Version))
	}
	return status.Errorf(codes.NotFound, "version: job %s has no version %d (kept: %s)", j.job.GetSpec().GetName(), v, strings.Join(kept, ", "))
}

// RevertJob submits a kept version of a job again, as a new version.
func (s *Store) RevertJob(ctx context.Context, jobID string, v uint64) (*cellv1.Job, uint64, error) {
	res, rev, err := s.do(ctx, revertOp{id: jobID, version: v})
	if err != nil {
		return nil, 0, err
	}
	return res.(*cellv1.Job), rev, nil
}

// ScaleJob sets a job's count, as a new version.
func (s *Store) ScaleJob(ctx context.Context, jobID string, count uint32) (*cellv1.Job, uint64, error) {
	res, rev, err := s.do(ctx, scaleOp{id: jobID, count: count})
	if err != nil {
		return nil, 0, err
	}
	return res.(*cellv1.Job), rev, nil
}

type revertOp struct {
	id      string
	version uint64
}

func (o revertOp) run(s *state) (any, error) {
	j, err := s.liveJob(o.id)
	if err != nil {
		return nil, err
	}
	jv := j.version(o.version)
	if jv == nil {
		return nil, versionNotKept(j, o.version)
	}
	return s.updateJob(j, proto.Clone(jv.Spec).(*cellv1.JobSpec), fmt.Sprintf("revert to version %d", o.version))
}

type scaleOp struct {
	id    string
	count uint32
}

func (o scaleOp) run(s *state) (any, error) {
	j, err := s.liveJob(o.id)
	if err != nil {
		return nil, err
	}
	if isSystem(j) {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s is a system job: one task per eligible machine, no count to scale", j.job.GetSpec().GetName())
	}
	spec := proto.Clone(j.job.Spec).(*cellv1.JobSpec)
	spec.Count = o.count
	if m := spec.Task.GetMaxPerMachine(); m > o.count {
		return nil, status.Errorf(codes.InvalidArgument, "count: %d is below the job's max_per_machine %d", o.count, m)
	}
	return s.updateJob(j, spec, fmt.Sprintf("scaled to %d", o.count))
}

func (s *state) liveJob(id string) (*jobEntry, error) {
	j, err := s.lookupJob(id)
	if err != nil {
		return nil, err
	}
	if !jobLive(j.job) {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s is %s; only a live job changes", j.job.GetSpec().GetName(), jobStateName(j.job.State))
	}
	return j, nil
}
