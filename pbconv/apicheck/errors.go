package apicheck

import "fmt"

// FieldError is a request refused for one field.
type FieldError struct {
	Field string // as in the .proto: spec.task.args[3]
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fail(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// wrap names the field of an error from a limits check.
func wrap(field string, err error) error {
	if err == nil {
		return nil
	}
	return &FieldError{Field: field, Msg: err.Error()}
}

func at(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }
