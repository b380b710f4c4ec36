//! Where each node of a YAML document is: a map from key path to line and column.
//!
//! Built by walking the parser's events once. Semantic errors found after decoding use it
//! to point at the offending line; decoding errors, which carry a position but no path,
//! use it the other way round.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, ScanError, Span};

/// A 1-based line and column.
pub(crate) type Position = (usize, usize);

/// One node of the document that has a key path.
#[derive(Debug, Clone)]
struct Node {
    /// Key path, like `services[0].upstreams.api.lb` (empty for the document root).
    path: String,
    /// Where the mapping key naming this node starts, when it is a mapping value.
    key: Option<Position>,
    /// Where the node itself starts.
    value: Position,
    /// The text of the node when it is a scalar.
    scalar: Option<String>,
    /// Whether the node is a mapping or a sequence.
    is_container: bool,
}

/// Key path to position index of one YAML document.
#[derive(Debug, Default)]
pub(crate) struct PositionIndex {
    nodes: Vec<Node>,
    by_path: HashMap<String, usize>,
}

/// A container being walked.
enum Frame {
    Mapping {
        path: String,
        /// The key read and waiting for its value, with the key's position.
        pending_key: Option<(String, Position)>,
        /// Nested containers used as a key; their contents are not indexed.
        complex_key_depth: usize,
    },
    Sequence {
        path: String,
        next_index: usize,
    },
}

/// A syntax error from the YAML parser, with a 1-based position.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) position: Position,
    pub(crate) message: String,
}

impl From<ScanError> for SyntaxError {
    fn from(err: ScanError) -> Self {
        SyntaxError {
            position: (err.marker().line(), err.marker().col() + 1),
            message: err.info(),
        }
    }
}

fn start_of(span: &Span) -> Position {
    (span.start.line(), span.start.col() + 1)
}

/// Appends a mapping key to a path.
pub(crate) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Appends a sequence index to a path.
pub(crate) fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The path of the container holding `path` (`a.b[2]` -> `a.b`, `a.b` -> `a`, `a` -> ``).
pub(crate) fn parent_path(path: &str) -> &str {
    if path.ends_with(']') {
        if let Some(open) = path.rfind('[') {
            return &path[..open];
        }
    }
    match path.rfind('.') {
        Some(dot) => &path[..dot],
        None => "",
    }
}

impl PositionIndex {
    /// Indexes the first document of `text`, or reports its first syntax error.
    pub(crate) fn build(text: &str) -> Result<PositionIndex, SyntaxError> {
        let mut index = PositionIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut documents = 0usize;
        for item in Parser::new_from_str(text) {
            let (event, span) = item?;
            let position = start_of(&span);
            match event {
                Event::DocumentStart(..) => {
                    documents += 1;
                    if documents > 1 {
                        // Decoding reports the extra document; the first is indexed.
                        break;
                    }
                }
                Event::Scalar(value, ..) => {
                    index.node(&mut stack, position, Some(value.into_owned()), false);
                }
                Event::Alias(_) => {
                    index.node(&mut stack, position, None, false);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_mapping = matches!(event, Event::MappingStart(..));
                    if let Some(path) = index.node(&mut stack, position, None, true) {
                        stack.push(if is_mapping {
                            Frame::Mapping {
                                path,
                                pending_key: None,
                                complex_key_depth: 0,
                            }
                        } else {
                            Frame::Sequence {
                                path,
                                next_index: 0,
                            }
                        });
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => index.end_container(&mut stack),
                _ => {}
            }
        }
        Ok(index)
    }

    /// Records a node starting at `position`. Returns the path a container started here
    /// should be walked with, or `None` when it belongs to a complex key (not indexed).
    fn node(
        &mut self,
        stack: &mut [Frame],
        position: Position,
        scalar: Option<String>,
        is_container: bool,
    ) -> Option<String> {
        let (path, key) = match stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::Sequence { path, next_index }) => {
                let item = join_index(path, *next_index);
                *next_index += 1;
                (item, None)
            }
            Some(Frame::Mapping {
                path,
                pending_key,
                complex_key_depth,
            }) => {
                if *complex_key_depth > 0 {
                    if is_container {
                        *complex_key_depth += 1;
                    }
                    return None;
                }
                match pending_key.take() {
                    Some((key, key_position)) => (join_key(path, &key), Some(key_position)),
                    None => {
                        if is_container {
                            *complex_key_depth = 1;
                            *pending_key = None;
                            return None;
                        }
                        let name = scalar.unwrap_or_else(|| "?".to_string());
                        *pending_key = Some((name, position));
                        return None;
                    }
                }
            }
        };
        self.by_path.entry(path.clone()).or_insert(self.nodes.len());
        self.nodes.push(Node {
            path: path.clone(),
            key,
            value: position,
            scalar,
            is_container,
        });
        Some(path)
    }

    fn end_container(&mut self, stack: &mut Vec<Frame>) {
        if let Some(Frame::Mapping {
            complex_key_depth,
            pending_key,
            ..
        }) = stack.last_mut()
        {
            if *complex_key_depth > 0 {
                *complex_key_depth -= 1;
                if *complex_key_depth == 0 {
                    // The complex key is complete; its value comes next under a placeholder.
                    *pending_key = Some(("?".to_string(), (0, 0)));
                }
                return;
            }
        }
        stack.pop();
    }

    /// Whether the node at `path` is written in the document.
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    /// Where the node at `path` is written, or failing that its closest indexed ancestor.
    ///
    /// A scalar is located at its value; a mapping or sequence at the key that names it
    /// (a block mapping's own position would be its first key, on the next line).
    pub(crate) fn locate(&self, path: &str) -> Option<Position> {
        let mut current = path;
        loop {
            if let Some(&i) = self.by_path.get(current) {
                let node = &self.nodes[i];
                return Some(match node.key {
                    Some(key) if node.is_container => key,
                    _ => node.value,
                });
            }
            if current.is_empty() {
                return None;
            }
            current = parent_path(current);
        }
    }

    /// The path of a mapping key `name` written at `position`, if there is one.
    pub(crate) fn key_at(&self, position: Position, name: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.key == Some(position) && n.path.rsplit('.').next() == Some(name))
            .map(|n| n.path.as_str())
    }

    /// The path of the mapping entry whose key starts at `position`, if any.
    pub(crate) fn key_path_at(&self, position: Position) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.key == Some(position))
            .map(|n| n.path.as_str())
    }

    /// Whether the document has no content at all (empty, or only comments and `---`).
    pub(crate) fn is_empty(&self) -> bool {
        match self.nodes.as_slice() {
            [] => true,
            [root] => matches!(root.scalar.as_deref(), Some("" | "~" | "null")),
            _ => false,
        }
    }

    /// The path of the node best described by `position`: the deepest node starting
    /// exactly there, else the last key or node starting before it.
    pub(crate) fn path_at(&self, position: Position) -> Option<&str> {
        let exact = self
            .nodes
            .iter()
            .filter(|n| n.value == position)
            .max_by_key(|n| n.path.len());
        if let Some(node) = exact {
            return Some(&node.path);
        }
        let mut best: Option<(Position, &Node)> = None;
        for node in &self.nodes {
            for start in [Some(node.value), node.key].into_iter().flatten() {
                if start <= position && best.is_none_or(|(b, _)| start >= b) {
                    best = Some((start, node));
                }
            }
        }
        best.map(|(_, node)| node.path.as_str())
    }

    /// The text of the scalar starting at `position`, if any.
    pub(crate) fn scalar_at(&self, position: Position) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.value == position && n.scalar.is_some())
            .and_then(|n| n.scalar.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "---\nthreads: 2\nservices:\n  - name: web\n    listeners:\n      - addr: 127.0.0.1:80\n    upstreams:\n      api:\n        peers: [\"a:1\", {addr: \"b:2\", weight: 3}]\n        lb: random\n";

    #[test]
    fn paths_map_to_positions() {
        let index = PositionIndex::build(DOC).unwrap();
        assert_eq!(index.locate("threads"), Some((2, 10)));
        assert_eq!(index.locate("services[0].name"), Some((4, 11)));
        assert_eq!(index.locate("services[0].listeners[0].addr"), Some((6, 15)));
        assert_eq!(index.locate("services[0].upstreams.api.lb"), Some((10, 13)));
        assert_eq!(
            index.locate("services[0].upstreams.api.peers[1].weight"),
            Some((9, 46))
        );
        assert_eq!(
            index.locate("services[0].upstreams.api.peers[0]"),
            Some((9, 17))
        );
    }

    #[test]
    fn missing_paths_fall_back_to_ancestors() {
        let index = PositionIndex::build(DOC).unwrap();
        assert_eq!(
            index.locate("services[0].upstreams.api.tls.sni"),
            index.locate("services[0].upstreams.api")
        );
        assert_eq!(index.locate("nothing"), index.locate(""));
    }

    #[test]
    fn positions_map_back_to_paths() {
        let index = PositionIndex::build(DOC).unwrap();
        assert_eq!(
            index.path_at((10, 13)),
            Some("services[0].upstreams.api.lb")
        );
        assert_eq!(
            index.key_at((10, 9), "lb"),
            Some("services[0].upstreams.api.lb")
        );
        assert_eq!(index.scalar_at((2, 10)), Some("2"));
        // A position inside a node maps to the closest node before it.
        assert_eq!(
            index.path_at((10, 15)),
            Some("services[0].upstreams.api.lb")
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = PositionIndex::build("a: 'x\n").unwrap_err();
        assert_eq!(err.position.0, 1);
        let err = PositionIndex::build("a:\n  - b\n c: d\n").unwrap_err();
        assert!(err.position.0 >= 2, "{err:?}");
    }

    #[test]
    fn complex_keys_are_skipped() {
        let index = PositionIndex::build("? [a, b]\n: 1\nc: 2\n").unwrap();
        assert_eq!(index.locate("c"), Some((3, 4)));
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("a.b[2]"), "a.b");
        assert_eq!(parent_path("a.b"), "a");
        assert_eq!(parent_path("a"), "");
        assert_eq!(parent_path("a[0]"), "a");
    }
}
