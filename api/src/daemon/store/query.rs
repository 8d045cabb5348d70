//! Search parameters as the REST API gives them (§6.3/§6.4 of the Tribler reference), checked,
//! and the user's search text turned into an FTS5 query that can never be a syntax error.

/// Tribler's message for any bad parameter of the search endpoints.
pub const BAD_PARAMS: &str = "Error processing request parameters";

/// The most words a search text may hold: more is refused rather than silently cut.
pub const MAX_WORDS: usize = 64;

/// How a listing is ordered when `sort_by` names a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    /// A column of the entry (the SQL column).
    Column(&'static str),
    /// Seeders, then leechers.
    Health,
    /// A channel-only column (`votes`, `subscribed`, `num_entries`): equal for every torrent,
    /// so only the row order applies.
    Constant,
}

/// `sort_by` as the client names it → (the internal name Tribler echoes, our order).
fn sort_column(name: &str) -> Option<(&'static str, SortBy)> {
    Some(match name {
        "category" => ("tags", SortBy::Column("category")),
        "name" => ("title", SortBy::Column("title")),
        "size" => ("size", SortBy::Column("size")),
        "infohash" => ("infohash", SortBy::Column("infohash")),
        "date" | "created" => ("torrent_date", SortBy::Column("torrent_date")),
        "status" => ("status", SortBy::Column("status")),
        "torrents" => ("num_entries", SortBy::Constant),
        "votes" => ("votes", SortBy::Constant),
        "subscribed" => ("subscribed", SortBy::Constant),
        "health" => ("HEALTH", SortBy::Health),
        _ => return None,
    })
}

/// The full-text part of a search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextFilter {
    /// No text: every entry.
    All,
    /// Text without a searchable word (`*`, `"-"`, …): no entry, as in Tribler.
    Nothing,
    /// An FTS5 query of quoted strings, each maybe a prefix.
    Match(String),
}

/// The checked parameters of a search or listing.
#[derive(Clone, Debug)]
pub struct SearchParams {
    /// 1-based index of the first result.
    pub first: i64,
    /// 1-based index of the last result (inclusive).
    pub last: i64,
    /// `sort_by` as echoed in the response (`null` when absent or unknown).
    pub sort_by_name: Option<&'static str>,
    pub sort_by: Option<SortBy>,
    pub sort_desc: bool,
    pub text: TextFilter,
    pub hide_xxx: bool,
    pub category: Option<String>,
    pub exclude_deleted: bool,
    pub max_rowid: Option<i64>,
    pub include_total: bool,
    /// Whether `metadata_type` lets torrents (300) through; the store holds nothing else.
    pub torrents_wanted: bool,
    /// Repeated `tags`: only torrents that have every one of these tags (without case).
    pub tags: Vec<String>,
}

/// A refused parameter: the message of the 400.
#[derive(Debug, PartialEq, Eq)]
pub struct ParamError(pub String);

fn bad() -> ParamError {
    ParamError(BAD_PARAMS.into())
}

fn int(v: &str) -> Result<i64, ParamError> {
    v.trim().parse::<i64>().map_err(|_| bad())
}

/// A boolean as either build accepts it: an integer (> 0 is true) or `true`/`false`.
fn boolean(v: &str) -> Result<bool, ParamError> {
    match v.trim() {
        "true" | "True" => Ok(true),
        "false" | "False" => Ok(false),
        other => int(other).map(|n| n > 0),
    }
}

impl SearchParams {
    /// Checks the query pairs of a request (`first`, `last`, `sort_by`, `sort_desc`,
    /// `txt_filter`, `hide_xxx`, `category`, `exclude_deleted`, `max_rowid`, `include_total`,
    /// `metadata_type` repeated, `tags` repeated). `remote` is refused by name: there are no
    /// peers to ask.
    pub fn parse(query: &[(String, String)]) -> Result<SearchParams, ParamError> {
        let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if get("remote").is_some() {
            return Err(ParamError(format!("{BAD_PARAMS}: 'remote' is not supported yet")));
        }
        let tags: Vec<String> = query.iter().filter(|(k, _)| k == "tags").map(|(_, v)| v.clone()).collect();
        if tags.len() > MAX_WORDS {
            return Err(ParamError(format!("{BAD_PARAMS}: more than {MAX_WORDS} 'tags'")));
        }
        let first = get("first").map(int).transpose()?.unwrap_or(1);
        let last = get("last").map(int).transpose()?.unwrap_or(50);
        if first < 0 || last < 0 {
            return Err(bad());
        }
        let sort = get("sort_by").and_then(sort_column);
        let mut torrents_wanted = true;
        let types: Vec<&str> = query.iter().filter(|(k, _)| k == "metadata_type").map(|(_, v)| v.as_str()).collect();
        if !types.is_empty() {
            torrents_wanted = false;
            for t in types {
                match t {
                    "" | "torrent" | "300" => torrents_wanted = true,
                    "channel" | "400" | "220" => {}
                    _ => return Err(bad()),
                }
            }
        }
        Ok(SearchParams {
            first,
            last,
            sort_by_name: sort.map(|(n, _)| n),
            sort_by: sort.map(|(_, s)| s),
            sort_desc: get("sort_desc").map(boolean).transpose()?.unwrap_or(true),
            text: match get("txt_filter") {
                None => TextFilter::All,
                Some(t) => fts_query(t)?,
            },
            hide_xxx: get("hide_xxx").map(boolean).transpose()?.unwrap_or(false),
            category: get("category").filter(|c| !c.is_empty()).map(str::to_string),
            exclude_deleted: get("exclude_deleted").map(boolean).transpose()?.unwrap_or(false),
            max_rowid: get("max_rowid").map(int).transpose()?,
            include_total: get("include_total").is_some_and(|v| !v.is_empty()),
            torrents_wanted,
            tags,
        })
    }

    /// SQL `LIMIT` and `OFFSET` of the page: Python's `query[(first or 1) - 1 : last]`.
    pub fn limit_offset(&self) -> (i64, i64) {
        let offset = (if self.first == 0 { 1 } else { self.first }) - 1;
        ((self.last - offset).max(0), offset)
    }
}

/// One piece of search text: a word or a quoted phrase, maybe with a trailing `*`.
fn push_term(out: &mut Vec<String>, words: &mut usize, text: &str, prefix: bool) -> Result<(), ParamError> {
    let n = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).count();
    if n == 0 {
        return Ok(());
    }
    *words += n;
    if *words > MAX_WORDS {
        return Err(ParamError(format!("{BAD_PARAMS}: txt_filter has more than {MAX_WORDS} words")));
    }
    // Inside an FTS5 string everything is literal (operators, `:`, `-`, `NEAR`); the text holds
    // no `"`, the only character that would end it.
    out.push(format!("\"{text}\"{}", if prefix { "*" } else { "" }));
    Ok(())
}

/// Turns search text into an FTS5 query: bare words and `"quoted phrases"` (an unbalanced
/// quote runs to the end), each a prefix when followed by `*`; every term must match.
pub fn fts_query(text: &str) -> Result<TextFilter, ParamError> {
    if text.trim().is_empty() {
        return Ok(TextFilter::All);
    }
    let mut terms = Vec::new();
    let mut words = 0;
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    while let Some(c) = chars.next() {
        if c == '"' {
            let w = std::mem::take(&mut word);
            push_term(&mut terms, &mut words, w.trim_end_matches('*'), w.ends_with('*'))?;
            let mut phrase = String::new();
            for p in chars.by_ref() {
                if p == '"' {
                    break;
                }
                phrase.push(p);
            }
            let prefix = chars.peek() == Some(&'*');
            while chars.peek() == Some(&'*') {
                chars.next();
            }
            push_term(&mut terms, &mut words, &phrase, prefix)?;
        } else if c.is_whitespace() {
            let w = std::mem::take(&mut word);
            push_term(&mut terms, &mut words, w.trim_end_matches('*'), w.ends_with('*'))?;
        } else {
            word.push(c);
        }
    }
    push_term(&mut terms, &mut words, word.trim_end_matches('*'), word.ends_with('*'))?;
    Ok(if terms.is_empty() { TextFilter::Nothing } else { TextFilter::Match(terms.join(" ")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> TextFilter {
        TextFilter::Match(s.into())
    }

    #[test]
    fn words_phrases_prefixes() {
        assert_eq!(fts_query("ubuntu iso").unwrap(), m("\"ubuntu\" \"iso\""));
        assert_eq!(fts_query("\"big buck\" bun*").unwrap(), m("\"big buck\" \"bun\"*"));
        assert_eq!(fts_query("\"ubuntu\"*").unwrap(), m("\"ubuntu\"*"));
        assert_eq!(fts_query("  ").unwrap(), TextFilter::All);
        assert_eq!(fts_query("*").unwrap(), TextFilter::Nothing);
        assert_eq!(fts_query("\"").unwrap(), TextFilter::Nothing);
    }

    #[test]
    fn operators_are_plain_text() {
        assert_eq!(fts_query("a NEAR b").unwrap(), m("\"a\" \"NEAR\" \"b\""));
        assert_eq!(fts_query("-linux title:x").unwrap(), m("\"-linux\" \"title:x\""));
        assert_eq!(fts_query("\"unbalanced phrase").unwrap(), m("\"unbalanced phrase\""));
        assert_eq!(fts_query("a\"b\"c").unwrap(), m("\"a\" \"b\" \"c\""));
        assert_eq!(fts_query("- : ( ) ^ +").unwrap(), TextFilter::Nothing);
    }

    #[test]
    fn too_many_words_is_refused() {
        let long = "word ".repeat(2000);
        assert!(fts_query(&long).unwrap_err().0.contains("txt_filter"));
        assert!(fts_query(&"word ".repeat(MAX_WORDS)).is_ok());
    }

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn parameters() {
        let p = SearchParams::parse(&pairs(&[])).unwrap();
        assert_eq!((p.first, p.last, p.sort_desc, p.hide_xxx, p.limit_offset()), (1, 50, true, false, (50, 0)));
        let p = SearchParams::parse(&pairs(&[
            ("first", "11"),
            ("last", "20"),
            ("sort_by", "health"),
            ("sort_desc", "false"),
        ]))
        .unwrap();
        assert_eq!((p.limit_offset(), p.sort_by_name, p.sort_desc), ((10, 10), Some("HEALTH"), false));
        for bad in [
            ("first", "x"),
            ("last", "1e3"),
            ("sort_desc", "yes"),
            ("hide_xxx", "9999999999999999999999"),
            ("max_rowid", ""),
        ] {
            assert_eq!(SearchParams::parse(&pairs(&[bad])).unwrap_err().0, BAD_PARAMS, "{bad:?}");
        }
        assert!(SearchParams::parse(&pairs(&[("remote", "1")])).unwrap_err().0.contains("'remote'"));
        assert_eq!(SearchParams::parse(&pairs(&[("tags", "a"), ("tags", "B")])).unwrap().tags, ["a", "B"]);
        let many: Vec<(&str, &str)> = vec![("tags", "x"); MAX_WORDS + 1];
        assert!(SearchParams::parse(&pairs(&many)).unwrap_err().0.contains("'tags'"));
        assert!(!SearchParams::parse(&pairs(&[("metadata_type", "400")])).unwrap().torrents_wanted);
        assert!(
            SearchParams::parse(&pairs(&[("metadata_type", "400"), ("metadata_type", "300")])).unwrap().torrents_wanted
        );
        assert_eq!(SearchParams::parse(&pairs(&[("sort_by", "nonsense")])).unwrap().sort_by_name, None);
    }
}
