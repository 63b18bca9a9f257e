//! A query rewrite oxigraph does not do itself: `FILTER(?v = <constant>)` directly over a
//! basic graph pattern becomes the constant in the pattern, so the lookup uses an index
//! instead of scanning every match of the pattern and filtering afterwards ("the device
//! named X" goes from a scan of every device to one index probe).
//!
//! It is applied only where it cannot change the answer: the constant is an IRI, a plain
//! string or a language-tagged string (for those, `=` holds exactly when the terms are
//! the same), the variable occurs in the pattern only as a subject or object, and the
//! variable is then bound to the constant again (`Extend`) for everything above.

use oxigraph::model::vocab::xsd;
use spargebra::Query;
use spargebra::algebra::{Expression, GraphPattern};
use spargebra::term::{NamedNodePattern, TermPattern, TriplePattern, Variable};

/// Rewrites every eligible equality filter of a query.
pub(crate) fn bind_equality_filters(query: &mut Query) {
    let pattern = match query {
        Query::Select { pattern, .. }
        | Query::Construct { pattern, .. }
        | Query::Describe { pattern, .. }
        | Query::Ask { pattern, .. } => pattern,
    };
    let taken = std::mem::replace(
        pattern,
        GraphPattern::Bgp {
            patterns: Vec::new(),
        },
    );
    *pattern = rewrite(taken);
}

fn rewrite(pattern: GraphPattern) -> GraphPattern {
    use GraphPattern as P;
    let b = |p: Box<P>| Box::new(rewrite(*p));
    match pattern {
        P::Filter { expr, inner } => match *inner {
            P::Bgp { patterns } => filter_over_bgp(expr, patterns),
            other => P::Filter {
                expr,
                inner: Box::new(rewrite(other)),
            },
        },
        P::Join { left, right } => P::Join {
            left: b(left),
            right: b(right),
        },
        P::LeftJoin {
            left,
            right,
            expression,
        } => P::LeftJoin {
            left: b(left),
            right: b(right),
            expression,
        },
        P::Lateral { left, right } => P::Lateral {
            left: b(left),
            right: b(right),
        },
        P::Union { left, right } => P::Union {
            left: b(left),
            right: b(right),
        },
        P::Minus { left, right } => P::Minus {
            left: b(left),
            right: b(right),
        },
        P::Graph { name, inner } => P::Graph {
            name,
            inner: b(inner),
        },
        P::Extend {
            inner,
            variable,
            expression,
        } => P::Extend {
            inner: b(inner),
            variable,
            expression,
        },
        P::OrderBy { inner, expression } => P::OrderBy {
            inner: b(inner),
            expression,
        },
        P::Project { inner, variables } => P::Project {
            inner: b(inner),
            variables,
        },
        P::Distinct { inner } => P::Distinct { inner: b(inner) },
        P::Reduced { inner } => P::Reduced { inner: b(inner) },
        P::Slice {
            inner,
            start,
            length,
        } => P::Slice {
            inner: b(inner),
            start,
            length,
        },
        P::Group {
            inner,
            variables,
            aggregates,
        } => P::Group {
            inner: b(inner),
            variables,
            aggregates,
        },
        other => other,
    }
}

/// `FILTER(a && b && …)` over a BGP: each conjunct `?v = constant` that qualifies moves
/// into the BGP; the others stay in the filter.
fn filter_over_bgp(expr: Expression, mut patterns: Vec<TriplePattern>) -> GraphPattern {
    let mut conjuncts = Vec::new();
    split_and(expr, &mut conjuncts);
    let mut kept = Vec::new();
    let mut bound: Vec<(Variable, Expression)> = Vec::new();
    for conjunct in conjuncts {
        match equality(&conjunct) {
            Some((variable, constant))
                if !bound.iter().any(|(v, _)| v == &variable)
                    && substitute(&mut patterns, &variable, &constant) =>
            {
                bound.push((variable, constant.into_expression()));
            }
            _ => kept.push(conjunct),
        }
    }
    let mut pattern = GraphPattern::Bgp { patterns };
    for (variable, expression) in bound {
        pattern = GraphPattern::Extend {
            inner: Box::new(pattern),
            variable,
            expression,
        };
    }
    match kept
        .into_iter()
        .reduce(|a, b| Expression::And(Box::new(a), Box::new(b)))
    {
        Some(expr) => GraphPattern::Filter {
            expr,
            inner: Box::new(pattern),
        },
        None => pattern,
    }
}

fn split_and(expr: Expression, out: &mut Vec<Expression>) {
    match expr {
        Expression::And(a, b) => {
            split_and(*a, out);
            split_and(*b, out);
        }
        other => out.push(other),
    }
}

enum Constant {
    Iri(oxigraph::model::NamedNode),
    Text(oxigraph::model::Literal),
}

impl Constant {
    fn into_expression(self) -> Expression {
        match self {
            Constant::Iri(n) => Expression::NamedNode(n),
            Constant::Text(l) => Expression::Literal(l),
        }
    }

    fn term(&self) -> TermPattern {
        match self {
            Constant::Iri(n) => TermPattern::NamedNode(n.clone()),
            Constant::Text(l) => TermPattern::Literal(l.clone()),
        }
    }
}

/// `?v = c`, `c = ?v`, or the same with `sameTerm`, for a qualifying constant.
fn equality(expr: &Expression) -> Option<(Variable, Constant)> {
    let (a, b) = match expr {
        Expression::Equal(a, b) | Expression::SameTerm(a, b) => (a.as_ref(), b.as_ref()),
        _ => return None,
    };
    let (variable, constant) = match (a, b) {
        (Expression::Variable(v), c) | (c, Expression::Variable(v)) => (v, c),
        _ => return None,
    };
    let constant = match constant {
        Expression::NamedNode(n) => Constant::Iri(n.clone()),
        Expression::Literal(l) if l.datatype() == xsd::STRING || l.language().is_some() => {
            Constant::Text(l.clone())
        }
        _ => return None,
    };
    Some((variable.clone(), constant))
}

/// Puts the constant in place of the variable in subject and object positions; false
/// (and nothing changed) when the variable does not occur there, or occurs as a
/// predicate, or a literal would land in a subject.
fn substitute(patterns: &mut [TriplePattern], variable: &Variable, constant: &Constant) -> bool {
    let is_var = |t: &TermPattern| matches!(t, TermPattern::Variable(v) if v == variable);
    let mut occurs = false;
    for p in patterns.iter() {
        if matches!(&p.predicate, NamedNodePattern::Variable(v) if v == variable) {
            return false;
        }
        if is_var(&p.subject) {
            if matches!(constant, Constant::Text(_)) {
                return false;
            }
            occurs = true;
        }
        occurs |= is_var(&p.object);
    }
    if !occurs {
        return false;
    }
    for p in patterns.iter_mut() {
        if is_var(&p.subject) {
            p.subject = constant.term();
        }
        if is_var(&p.object) {
            p.object = constant.term();
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::sparql::{QueryResults, SparqlEvaluator};
    use oxigraph::store::Store;

    fn answers(store: &Store, text: &str, rewrite: bool) -> Vec<String> {
        let mut query = spargebra::SparqlParser::new().parse_query(text).unwrap();
        if rewrite {
            bind_equality_filters(&mut query);
        }
        let QueryResults::Solutions(solutions) = SparqlEvaluator::new()
            .for_query(query)
            .on_store(store)
            .execute()
            .unwrap()
        else {
            panic!("solutions expected")
        };
        let mut rows: Vec<String> = solutions
            .map(|s| {
                let s = s.unwrap();
                s.iter()
                    .map(|(v, t)| format!("{v}={t}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn rewritten_queries_give_the_same_answers() {
        let store = Store::new().unwrap();
        store
            .load_from_slice(
                oxigraph::io::RdfFormat::Turtle,
                r#"@prefix s: <https://schema.org/> .
                <urn:a> a <urn:Device> ; s:name "pulse" ; s:price 20 .
                <urn:b> a <urn:Device> ; s:name "pulse"@en ; s:price 20.0 .
                <urn:c> a <urn:Device> ; s:name "other" ; s:link <urn:a> ."#,
            )
            .unwrap();
        for query in [
            r#"SELECT ?s ?n WHERE { ?s a <urn:Device> ; <https://schema.org/name> ?n FILTER(?n = "pulse") }"#,
            r#"SELECT * WHERE { ?s <https://schema.org/name> ?n FILTER("pulse"@en = ?n && ?s != <urn:c>) }"#,
            r#"SELECT ?s WHERE { ?s <https://schema.org/price> ?p FILTER(?p = 20) }"#,
            r#"SELECT ?s ?t WHERE { ?s <https://schema.org/link> ?t FILTER(sameTerm(?t, <urn:a>)) }"#,
            r#"SELECT ?s WHERE { ?s ?p ?o FILTER(?p = <https://schema.org/name>) }"#,
            r#"SELECT ?s WHERE { ?s a <urn:Device> FILTER(?s = <urn:b>) }"#,
            r#"SELECT ?s WHERE { ?s a <urn:Device> OPTIONAL { ?s <https://schema.org/name> ?n FILTER(?n = "other") } }"#,
        ] {
            assert_eq!(
                answers(&store, query, true),
                answers(&store, query, false),
                "{query}"
            );
        }
    }

    #[test]
    fn an_equality_on_a_string_becomes_a_bound_pattern() {
        let mut query = spargebra::SparqlParser::new()
            .parse_query(r#"SELECT ?s WHERE { ?s <urn:name> ?n FILTER(?n = "x") }"#)
            .unwrap();
        bind_equality_filters(&mut query);
        let sse = query.to_sse();
        assert!(!sse.contains("filter"), "{sse}");
        assert!(sse.contains("\"x\""), "{sse}");
        // A number keeps its filter: 20 = 20.0 holds, though the terms differ.
        let mut query = spargebra::SparqlParser::new()
            .parse_query(r#"SELECT ?s WHERE { ?s <urn:price> ?p FILTER(?p = 20) }"#)
            .unwrap();
        bind_equality_filters(&mut query);
        assert!(query.to_sse().contains("filter"));
    }
}
