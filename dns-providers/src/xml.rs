//! A small element tree over quick-xml, for the two XML APIs (Namecheap,
//! Route 53): names, attributes, text, children. No namespaces, no DTDs.

use quick_xml::{Reader, events::Event};

/// One element.
#[derive(Debug, Default, Clone)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed XML: {0}")]
pub struct XmlError(String);

/// Deepest nesting read (the APIs use a handful of levels).
const MAX_DEPTH: usize = 32;

impl Element {
    /// The document's root element.
    pub fn parse(bytes: &[u8]) -> Result<Self, XmlError> {
        let text = std::str::from_utf8(bytes).map_err(|e| XmlError(e.to_string()))?;
        let mut reader = Reader::from_str(text);
        let mut stack: Vec<Element> = vec![Element::default()];
        loop {
            match reader.read_event().map_err(|e| XmlError(e.to_string()))? {
                Event::Start(e) | Event::Empty(e) if stack.len() > MAX_DEPTH => {
                    return Err(XmlError(format!("nested deeper than {MAX_DEPTH} at {:?}", e.name())));
                }
                Event::Start(e) => stack.push(Self::open(&e)?),
                Event::Empty(e) => {
                    let el = Self::open(&e)?;
                    if let Some(parent) = stack.last_mut() {
                        parent.children.push(el);
                    }
                }
                Event::End(_) => {
                    let el = stack.pop().ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                    let parent = stack.last_mut().ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                    parent.children.push(el);
                }
                Event::Text(t) => {
                    let s = t.xml_content().map_err(|e| XmlError(e.to_string()))?;
                    if let Some(el) = stack.last_mut() {
                        el.text.push_str(&s);
                    }
                }
                Event::CData(t) => {
                    if let Some(el) = stack.last_mut() {
                        el.text.push_str(&String::from_utf8_lossy(&t));
                    }
                }
                Event::GeneralRef(r) => {
                    let name = r.decode().map_err(|e| XmlError(e.to_string()))?;
                    let entity = format!("&{name};");
                    let resolved =
                        quick_xml::escape::unescape(&entity).map_err(|e| XmlError(e.to_string()))?;
                    if let Some(el) = stack.last_mut() {
                        el.text.push_str(&resolved);
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let document =
            stack.pop().filter(|_| stack.is_empty()).ok_or_else(|| XmlError("unclosed element".into()))?;
        document.children.into_iter().next().ok_or_else(|| XmlError("no root element".into()))
    }

    fn open(e: &quick_xml::events::BytesStart<'_>) -> Result<Self, XmlError> {
        let name = local(&String::from_utf8_lossy(e.name().as_ref()));
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|e| XmlError(e.to_string()))?;
            let value = a.unescape_value().map_err(|e| XmlError(e.to_string()))?;
            attrs.push((local(&String::from_utf8_lossy(a.key.as_ref())), value.into_owned()));
        }
        Ok(Self { name, attrs, ..Self::default() })
    }

    /// An attribute's value (name compared without case).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child named `name`, trimmed.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// Every descendant named `name`, depth first.
    pub fn descendants<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.descendants(name, out);
        }
    }

    /// [`descendants`](Self::descendants) as a new vector.
    pub fn all(&self, name: &str) -> Vec<&Element> {
        let mut out = Vec::new();
        self.descendants(name, &mut out);
        out
    }
}

fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_owned()
}

/// XML text with `&`, `<`, `>`, `"` and `'` escaped.
pub(crate) fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_attributes_text_and_entities() {
        let doc = br#"<?xml version="1.0"?><A xmlns="x" S="OK"><B>one &amp; &quot;two&quot;</B><C N="1"/><C N="2"/></A>"#;
        let root = Element::parse(doc).unwrap();
        assert_eq!(root.attr("s"), Some("OK"));
        assert_eq!(root.child_text("B"), Some("one & \"two\""));
        assert_eq!(root.all("C").len(), 2);
        assert!(Element::parse(b"<A><B></A>").is_err());
    }
}
