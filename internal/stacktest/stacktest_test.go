package stacktest

import (
	"saasengine/workflows/subscription"
	"testing"
)

// The harness itself: a purchase goes through landing and activation, and a customer's seat change
// arrives as a signed webhook, is decided and applied.
func TestStackRunsASubscription(t *testing.T) {
	s := Start(t, Options{})
	id := s.Activated(t, "team", 10)
	if _, err := s.Emu.Emulator.CustomerChangeQuantity(id, 15); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, id, "15 seats", func(st subscription.State) bool { return st.Quantity == 15 })
	if sub, _ := s.Emu.Emulator.Subscription(id); sub.Quantity != 15 {
		t.Fatalf("emulator has %d seats", sub.Quantity)
	}
}
