package server

import "testing"

func TestTermLengthReadsAsABuyerWouldSayIt(t *testing.T) {
	for unit, want := range map[string]string{"P1M": "1 month", "P1Y": "1 year", "P3Y": "3 years", "P2W": "2 weeks",
		"": "", "P1Q": "P1Q", "P0M": "P0M", "P1M2": "P1M2", "monthly": "monthly"} {
		if got := termLength(unit); got != want {
			t.Errorf("termLength(%q) = %q, want %q", unit, got, want)
		}
	}
}
