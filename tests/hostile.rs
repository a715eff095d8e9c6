//! Hostile and careless input, through the real binary: the corpus in
//! `tests/fixtures/hostile/` (recipes written as an attacker or a hurried new user would)
//! must each give a clear, located error, never a panic, a hang or a file written outside
//! the project; and what a rejected base recipe holds is never printed.

mod common;

use common::{litert, root};

#[test]
fn hostile_recipes_are_refused_with_located_errors() {
    insta::glob!("fixtures/hostile/[!_]*.yaml", |path| {
        let rel = path
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let out = litert(&["check", &rel]);
        assert_eq!(out.code, 2, "{rel} should be invalid:\n{}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{rel}:\n{}", out.stderr);
        assert!(
            !out.stderr.contains("hostile-fixture-secret") && !out.stderr.contains("AKIA"),
            "{rel} printed a line of a file that is not a recipe:\n{}",
            out.stderr
        );
        insta::assert_snapshot!(out.diagnostic());
    });
}

#[test]
fn extends_errors_never_print_a_non_recipe_file_as_json_either() {
    for recipe in ["extends_yaml_that_is_not_a_recipe", "extends_broken_yaml"] {
        let out = litert(&[
            "check",
            &format!("tests/fixtures/hostile/{recipe}.yaml"),
            "--format",
            "json",
        ]);
        assert_eq!(out.code, 2);
        assert!(!out.stdout.contains("hostile-fixture-secret"), "{}", out.stdout);
        assert!(!out.stdout.contains("AKIA"), "{}", out.stdout);
    }
}
