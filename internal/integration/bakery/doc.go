// Package bakery tests the Rugix Bakery repository at the root of this module
// (rugix-repository.toml and recipes/) and the example project that uses it (examples/bakery,
// whose layers add networking and Nexigon Agent) without Docker or Bakery itself:
//
//   - every recipe.toml, layer file, state file and the example project validate against
//     Rugix's published JSON Schemas, stored verbatim in schemas/upstream/, after TOML→JSON
//     conversion, and follow Bakery's rules the schemas cannot express (step file names,
//     parameters of recipes that are part of the layer, dependencies that exist);
//   - every step script passes shellcheck;
//   - every step runs against a scratch system root with the environment Bakery gives a step
//     (RUGIX_ROOT_DIR, RUGIX_PROJECT_DIR, RUGIX_ARCH, RECIPE_DIR, RECIPE_PARAM_*,
//     LAYER_REBUILD_IF_CHANGED, …), and the files it installs are checked against what
//     otabake-agent, systemd, Rugix Ctrl and Nexigon Agent expect.
//
// How a scratch root stands in for Bakery's chroot: the recipes write every path below
// RUGIX_ROOT_DIR, which Bakery sets to "/" for `install` steps (run in a chroot of the system
// root) and to the system root's host path for `run` steps. The tests set it to a temporary
// directory for both kinds, so the scripts that run in the image are the scripts under test.
// The package has no non-test code; this file only documents it.
package bakery
