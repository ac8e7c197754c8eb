// Scenarios whose runtime parts are not on main yet.
func moreScenarios() -> [Scenario] { [] }
