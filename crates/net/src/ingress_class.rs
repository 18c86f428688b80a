//! Which Ingresses belong to berth's proxy: `spec.ingressClassName` naming berth's class, or
//! no class when berth's IngressClass is the cluster default (the deprecated
//! `kubernetes.io/ingress.class` annotation counts as a class name).

use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

/// The IngressClass annotation that marks the default class.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The controller name in berth's IngressClass.
pub const CONTROLLER: &str = "berth.io/ingress";

pub struct IngressClassFilter {
    class: String,
    ours_is_default: bool,
}

impl IngressClassFilter {
    pub fn new(class: &str, classes: &[Arc<IngressClass>]) -> IngressClassFilter {
        let ours_is_default = classes.iter().any(|c| {
            c.metadata.name.as_deref() == Some(class)
                && c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true")
        });
        IngressClassFilter {
            class: class.to_string(),
            ours_is_default,
        }
    }

    pub fn is_ours(&self, ing: &Ingress) -> bool {
        let named = ing
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.clone())
            .or_else(|| {
                ing.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kubernetes.io/ingress.class").cloned())
            });
        match named {
            Some(n) => n == self.class,
            None => self.ours_is_default,
        }
    }
}
