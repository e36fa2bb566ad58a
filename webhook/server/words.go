package server

import (
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// The buyer's words for where a subscription stands. Microsoft's statuses and the workflow's phases are
// internal names (PendingFulfillmentStart, Idle, ActivationFailed…): the pages never show them, nor the
// text of an internal error.

// standing is a subscription's state as the buyer reads it.
type standing struct {
	// Label is a few words: "Ready", "Setting up".
	Label string
	// Message says what it means and what happens next, in a sentence or two.
	Message string
	// Tone styles the label: "ok", "wait", "bad".
	Tone string
	// Step is how far the setup is, of setupSteps: 1 waiting for confirmation, 2 setting up, 3 ready; 0
	// when the subscription is past setup in another way (suspended, cancelled, failed).
	Step int
}

// setupSteps are the steps of the progress indicator.
var setupSteps = []string{"Confirm", "Set up", "Ready"}

// standingOf reads a view in the buyer's words. product names the vendor's product ("Contoso Analytics").
func standingOf(v View, product string) standing {
	if product == "" {
		product = "the service"
	}
	switch {
	case v.Failed:
		return standing{Label: "Setup needs our attention", Tone: "bad",
			Message: "We could not finish setting up your account. Our team has been told and will finish it or contact you; there is nothing you need to do now. You are not billed until your account is ready."}
	case v.AwaitingConfirmation:
		return standing{Label: "Waiting for your confirmation", Tone: "wait", Step: 1,
			Message: "Check what you bought, then confirm to set up your account. Microsoft starts billing only once your account is ready."}
	}
	switch marketplace.SubscriptionStatus(v.Status) {
	case marketplace.StatusSubscribed:
		msg := "Your account is ready. You can start using " + product + " now."
		if subscription.Phase(v.Stage) == subscription.PhaseChanging {
			msg = "Your account is ready. A change to your plan or seats is being made; you can keep using " + product + " meanwhile."
		}
		return standing{Label: "Ready", Tone: "ok", Step: 3, Message: msg}
	case marketplace.StatusSuspended:
		return standing{Label: "Suspended: check your payment method", Tone: "bad",
			Message: "Microsoft suspended this subscription, usually because a payment did not go through. Your data is kept. Check the payment method in the Microsoft 365 admin center or the Azure portal; access returns as soon as Microsoft reinstates the subscription."}
	case marketplace.StatusUnsubscribed:
		return standing{Label: "Cancelled", Tone: "bad",
			Message: "This subscription has been cancelled. To use " + product + " again, buy it again from Microsoft."}
	}
	if subscription.Phase(v.Stage) == subscription.PhaseAwaitingApproval {
		return standing{Label: "Waiting for approval", Tone: "wait", Step: 2,
			Message: "Thank you: your confirmation is recorded. Our team approves new accounts before setting them up; this page updates by itself once it is done. You are not billed until your account is ready."}
	}
	return standing{Label: "Setting up", Tone: "wait", Step: 2,
		Message: "We are setting up your account. This usually takes a minute or two; this page updates by itself."}
}
