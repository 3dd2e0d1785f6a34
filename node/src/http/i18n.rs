//! Vietnamese or English: `?lang=vi|en` wins, then the first of the two in
//! `Accept-Language` (by quality), then Vietnamese. Texts sit where they are used, as pairs,
//! so a page reads whole in either language.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};

/// The language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    /// Tiếng Việt (the default).
    Vi,
    /// English.
    En,
}

impl Lang {
    /// The language asked for by `uri`'s query or `headers`.
    pub(crate) fn pick(uri: &Uri, headers: &HeaderMap) -> Lang {
        let query = uri.query().unwrap_or("");
        for pair in query.split('&') {
            match pair {
                "lang=vi" => return Lang::Vi,
                "lang=en" => return Lang::En,
                _ => {}
            }
        }
        let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut best: Option<(f32, Lang)> = None;
        for item in accept.split(',') {
            let mut parts = item.trim().split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            let lang = match tag.split('-').next() {
                Some("vi") => Lang::Vi,
                Some("en") => Lang::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Vi, |(_, l)| l)
    }

    /// The language of a whole request.
    pub(crate) fn of<B>(request: &axum::http::Request<B>) -> Lang {
        Lang::pick(request.uri(), request.headers())
    }

    /// `vi` or `en`, as the text says it.
    pub(crate) fn t<'a>(self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    /// The `lang` attribute.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// The other language (for the switch link).
    pub(crate) fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::pick(&parts.uri, &parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(query: &str, accept: &str) -> Lang {
        let uri: Uri = format!("/verify{query}").parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, accept.parse().unwrap());
        Lang::pick(&uri, &headers)
    }

    #[test]
    fn the_query_wins_then_the_best_quality_then_vietnamese() {
        assert_eq!(pick("?lang=en", "vi"), Lang::En);
        assert_eq!(pick("?x=1&lang=vi", "en-US"), Lang::Vi);
        assert_eq!(pick("", "en-US,en;q=0.9,vi;q=0.8"), Lang::En);
        assert_eq!(pick("", "fr, vi;q=0.5, en;q=0.4"), Lang::Vi);
        assert_eq!(pick("", "fr, de"), Lang::Vi);
        assert_eq!(pick("", "en;q=0"), Lang::Vi);
    }
}
