package render

import (
	"reflect"

	"github.com/dibuild/dib/spec/diag"
)

// escaped returns a deep copy of v with every string escaped
// (diag.Escape): a rendering for a person shows a Dibfile's or an
// element's control characters instead of sending them to the terminal,
// where ESC and BEL sequences could rewrite or hide lines of the plan.
// Newlines and tabs stay (scripts and diffs are multi-line).
func escaped[T any](v T) T {
	out := reflect.New(reflect.TypeOf(&v).Elem()).Elem()
	copyEscaped(out, reflect.ValueOf(&v).Elem())
	return out.Interface().(T)
}

func copyEscaped(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.String:
		dst.SetString(diag.Escape(src.String()))
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		p := reflect.New(src.Elem().Type())
		copyEscaped(p.Elem(), src.Elem())
		dst.Set(p)
	case reflect.Struct:
		for i := 0; i < src.NumField(); i++ {
			if dst.Field(i).CanSet() {
				copyEscaped(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := 0; i < src.Len(); i++ {
			copyEscaped(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Array:
		for i := 0; i < src.Len(); i++ {
			copyEscaped(dst.Index(i), src.Index(i))
		}
	case reflect.Map:
		if src.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		it := src.MapRange()
		for it.Next() {
			k := reflect.New(src.Type().Key()).Elem()
			copyEscaped(k, it.Key())
			val := reflect.New(src.Type().Elem()).Elem()
			copyEscaped(val, it.Value())
			m.SetMapIndex(k, val)
		}
		dst.Set(m)
	case reflect.Interface:
		if src.IsNil() {
			return
		}
		e := reflect.New(src.Elem().Type()).Elem()
		copyEscaped(e, src.Elem())
		dst.Set(e)
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		dst.Set(src) // shared, not data
	default:
		dst.Set(src)
	}
}
