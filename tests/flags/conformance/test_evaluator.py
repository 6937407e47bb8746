"""flagd-testbed's evaluator suite (evaluator/gherkin/*.feature against testkit-flags.json)."""

from pytest_bdd import scenarios

from tests.flags.conformance.testbed import EVALUATOR_FEATURES

scenarios(str(EVALUATOR_FEATURES))
