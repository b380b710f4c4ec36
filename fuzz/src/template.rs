//! The route / rewrite template parser: never a panic, and a text without `$` is its
//! own literal.

use pingora_config::Template;

/// Input: the template text.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Template::parse(text);
    if !text.contains('$') {
        let t = parsed.expect("a text without $ is a literal");
        assert_eq!(t.as_literal(), Some(text));
        return;
    }
    if let Ok(t) = parsed {
        assert!(t.max_capture() <= 9);
        let _ = t.vars().count();
    }
}
