package config

import (
	"errors"
	"net/url"
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
	if u.User != nil {
		if _, ok := u.User.Password(); !ok {
			u.User = url.User("xxxxx")
		}
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u.Redacted()
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
