package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// redactedURL stands for a URL setting that does not parse: its secret
// parts cannot be told from the rest, so none of it is shown.
const redactedURL = "<redacted>"

// errUnparsable replaces a URL parser's reason, which can quote a piece
// of the URL: in "https://user:pa/ss@host" the "port" it complains
// about is the start of the password.
var errUnparsable = errors.New("not a valid URL")

// RedactURL is a URL setting (LINE_API_BASE_URL, LINE_DATA_API_BASE_URL)
// as it may be logged or stored in an error: without its password, query
// and fragment. A base URL is accepted with credentials in it (an
// authenticating egress gateway's user:password@ or ?key=), and nothing
// that prints it may print them. A user name without a password is hidden
// too, since it is then usually the key itself.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" { // "http:user:pw@host" parses, all of it opaque
		return redactedURL
	}
	if strayAt(s, u) {
		return redactedURL
	}
	if u.User != nil {
		if _, ok := u.User.Password(); !ok {
			u.User = url.User("xxxxx")
		}
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u.Redacted()
}

// WithoutURL is a transport error (of http.Client.Do) without the URL
// url.Error puts in it: callers name the method and path themselves, and
// a base URL setting could carry credentials.
func WithoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// RedactURLError is err, as net/http or net/url returned it for a URL
// built on a URL setting, with that URL redacted (RedactURL). Errors of
// http.NewRequest end in api_log.error and outbox.last_error. A failure to
// parse loses the parser's reason too (errUnparsable).
func RedactURLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	reason := ue.Err
	if ue.Op == "parse" {
		reason = errUnparsable
	}
	return &url.Error{Op: ue.Op, URL: RedactURL(ue.URL), Err: reason}
}

// strayAt reports an "@" that u did not read as ending its user info: a
// credential with an unescaped "/", "?" or "#" in it ends the authority
// early, so the rest of it, "@" and all, parses as the path, query or
// fragment ("https://ab/cd==@gw.example" is host "ab", path "/cd==@…").
func strayAt(s string, u *url.URL) bool {
	return (u.User == nil && strings.Contains(s, "@")) ||
		strings.Contains(u.Path, "@") || strings.Contains(u.RawQuery, "@") || strings.Contains(u.Fragment, "@")
}

// CheckBaseURL refuses a base URL setting (LINE_API_BASE_URL,
// LINE_DATA_API_BASE_URL) that cannot work: not http(s), no host, or a
// query or fragment, which the API paths appended to it would end up
// inside. Also one whose credentials hold an unescaped "/", "?" or "#":
// it parses as another host with the rest in its path, and would reach
// api_log and the logs in every request's path. The error names the
// setting's value redacted.
func CheckBaseURL(name, s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Opaque != "" || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("%s %q: want an http(s) URL with a host", name, RedactURL(s))
	case strayAt(s, u):
		return fmt.Errorf("%s %q: an \"@\" outside the user info; escape \"/\", \"?\" and \"#\" in credentials (%%2F, %%3F, %%23)", name, RedactURL(s))
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("%s %q: a base URL takes no query or fragment; the API paths are appended to it", name, RedactURL(s))
	}
	return nil
}
