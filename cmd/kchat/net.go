package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (a *app) runUI(cmd *cobra.Command, _ []string) error {
	return errors.New("the UI is not wired yet")
}

func (a *app) syncCmd() *cobra.Command {
	return &cobra.Command{Use: "sync CHANNEL", Short: "Replicate a channel with peers until caught up, then exit", Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error { return errors.New("not wired yet") }}
}

func (a *app) seedCmd() *cobra.Command {
	return &cobra.Command{Use: "seed", Short: "Run a headless always-on peer", Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error { return errors.New("not wired yet") }}
}

func (a *app) peersCmd() *cobra.Command {
	return &cobra.Command{Use: "peers", Short: "List connected peers of a running node", Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error { return errors.New("not wired yet") }}
}
