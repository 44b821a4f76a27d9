package events

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// VerifySignature must compare MACs in constant time, which no test of
// what it accepts can tell from a plain comparison: so this reads its
// source. The MAC comparison goes through hmac.Equal (or
// subtle.ConstantTimeCompare), and nothing else in the function compares
// values other than against a literal or nil, or calls bytes' or
// strings' comparisons, each of which returns at the first differing
// byte and so tells a forger how much of a guess was right.
func TestVerifySignatureComparesInConstantTime(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "signature.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "VerifySignature" {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("VerifySignature not found in signature.go")
	}
	constant := false
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, _ := sel.X.(*ast.Ident)
			if pkg == nil {
				return true
			}
			switch name := pkg.Name + "." + sel.Sel.Name; name {
			case "hmac.Equal", "subtle.ConstantTimeCompare":
				constant = true
			case "bytes.Equal", "bytes.Compare", "strings.Compare", "strings.EqualFold", "reflect.DeepEqual", "slices.Equal":
				t.Errorf("VerifySignature calls %s, which stops at the first differing byte", name)
			}
		case *ast.BinaryExpr:
			if (n.Op == token.EQL || n.Op == token.NEQ) && !literalOrNil(n.X) && !literalOrNil(n.Y) {
				t.Errorf("VerifySignature compares two values with %s; only hmac.Equal may compare MACs", n.Op)
			}
		}
		return true
	})
	if !constant {
		t.Error("VerifySignature does not compare the MACs with hmac.Equal or subtle.ConstantTimeCompare")
	}
}

func literalOrNil(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return e.Name == "nil"
	}
	return false
}
