package transport_test

const helperEnv = "RSP_TRANSPORT_TEST_HELPER"

func runHelper(mode string) int { return 2 }
