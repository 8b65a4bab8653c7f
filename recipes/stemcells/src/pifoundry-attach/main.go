// Command pifoundry-attach keeps a netbooted Pi's NBD devices in line with what powerd
// publishes for it (powerd/README.md, "Attach helper API"): it long-polls
// GET <api>/pifoundry/v1/attachments, connects or disconnects each listed device with
// nbd-client and confirms every entry with POST <api>/pifoundry/v1/attachments/<disk>.
// After the first pass has connected everything listed (the ephemeral disk among it) it
// tells systemd READY, so bosh-agent starts with its disks present.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

type nbdTarget struct {
	Host   string `json:"host"`
	Port   uint16 `json:"port"`
	Export string `json:"export"`
}

type attachment struct {
	Disk   string    `json:"disk"`
	Slot   uint8     `json:"slot"`
	Device string    `json:"device"`
	NBD    nbdTarget `json:"nbd"`
	Want   string    `json:"want"`
}

type published struct {
	Generation  uint64       `json:"generation"`
	Attachments []attachment `json:"attachments"`
}

type helper struct {
	api       string
	nbdClient string
	console   string
	client    *http.Client
	// what this helper connected, by device: the target it was connected to
	connected map[string]nbdTarget
	// where `connected` is kept ("" for nowhere): a helper that systemd restarted finds
	// the devices its predecessor connected instead of failing on them as in use
	state string
}

func main() {
	flags := flag.NewFlagSet("pifoundry-attach", flag.ContinueOnError)
	cmdline := flags.String("cmdline", "/proc/cmdline", "kernel command line holding pifoundry.api=")
	api := flags.String("api", "", "powerd's Pi-network base URL (default: pifoundry.api= of -cmdline)")
	nbdClient := flags.String("nbd-client", "nbd-client", "the nbd-client command")
	console := flags.String("console", "/dev/console", "where progress lines go besides stdout (\"\" for none)")
	once := flags.Bool("once", false, "one pass, then exit (no long poll)")
	source := flags.String("source", "", "local address to speak to powerd from (default: the kernel's choice)")
	state := flags.String("state", "", "file keeping what this helper connected across its restarts (under /run: not across boots)")
	if err := flags.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	base := *api
	if base == "" {
		var err error
		if base, err = apiFromCmdline(*cmdline); err != nil {
			fmt.Fprintf(os.Stderr, "pifoundry-attach: %v\n", err)
			os.Exit(1)
		}
	}
	h := &helper{
		api:       strings.TrimRight(base, "/"),
		nbdClient: *nbdClient,
		console:   *console,
		client:    httpClient(*source),
		connected: map[string]nbdTarget{},
		state:     *state,
	}
	h.loadState()
	h.run(*once)
}

// httpClient speaks from `source` when given: powerd tells Pis apart by source address.
func httpClient(source string) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if source != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	return &http.Client{
		Timeout:   150 * time.Second,
		Transport: &http.Transport{DialContext: dialer.DialContext},
	}
}

func apiFromCmdline(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, word := range strings.Fields(string(data)) {
		if v := strings.TrimPrefix(word, "pifoundry.api="); v != word {
			if u, err := url.Parse(v); err != nil || u.Scheme != "http" || u.Host == "" {
				return "", fmt.Errorf("%s: pifoundry.api=%s is not an http:// URL", path, v)
			}
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: no pifoundry.api= parameter", path)
}

// run is the loop of the API: poll with the last generation, apply the whole list, confirm.
// Connection errors are retried: powerd may be restarting, and devices stay as they are.
func (h *helper) run(once bool) {
	var after uint64
	ready := false
	for {
		wait := 60
		if !ready {
			wait = 0
		}
		list, err := h.poll(after, wait)
		if err != nil {
			h.say("PIFOUNDRY-ATTACH error poll: %v", err)
			time.Sleep(3 * time.Second)
			continue
		}
		changed := list.Generation != after
		after = list.Generation
		if changed || !ready {
			allConnected := h.apply(list.Attachments)
			if !ready && allConnected {
				ready = true
				notifyReady()
				if once {
					return
				}
			}
			if !allConnected {
				// retry the failed entries on the next pass (confirmations were sent)
				after = 0
				time.Sleep(3 * time.Second)
			}
		}
	}
}

func (h *helper) poll(after uint64, wait int) (published, error) {
	var list published
	resp, err := h.client.Get(fmt.Sprintf("%s/pifoundry/v1/attachments?after=%d&wait=%d", h.api, after, wait))
	if err != nil {
		return list, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return list, err
	}
	if resp.StatusCode != http.StatusOK {
		return list, fmt.Errorf("GET attachments: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return list, fmt.Errorf("GET attachments: %v", err)
	}
	return list, nil
}

// apply brings every listed device to its wanted state and confirms it; it reports whether
// every `connected` entry is connected.
func (h *helper) apply(list []attachment) bool {
	all := true
	for _, a := range list {
		state, msg := h.bring(a)
		if a.Want == "connected" && state != "connected" {
			all = false
		}
		h.say("PIFOUNDRY-ATTACH %s disk=%s device=%s", state, a.Disk, a.Device)
		if err := h.confirm(a.Disk, state, msg); err != nil {
			h.say("PIFOUNDRY-ATTACH error confirm disk=%s: %v", a.Disk, err)
			all = false
		}
	}
	return all
}

func (h *helper) bring(a attachment) (state, msg string) {
	if !validDevice(a.Device) {
		return "failed", fmt.Sprintf("device %q is not /dev/nbdN", a.Device)
	}
	switch a.Want {
	case "connected":
		if t, ok := h.connected[a.Device]; ok && t == a.NBD {
			return "connected", ""
		}
		if _, ok := h.connected[a.Device]; ok {
			_, _ = h.nbd("-d", a.Device)
		}
		if out, err := h.nbd(a.NBD.Host, fmt.Sprint(a.NBD.Port), a.Device, "-N", a.NBD.Export); err != nil {
			return "failed", fmt.Sprintf("%v: %s", err, out)
		}
		h.connected[a.Device] = a.NBD
		h.saveState()
		return "connected", ""
	case "disconnected":
		if out, err := h.nbd("-d", a.Device); err != nil {
			return "failed", fmt.Sprintf("%v: %s", err, out)
		}
		delete(h.connected, a.Device)
		h.saveState()
		return "disconnected", ""
	default:
		return "failed", fmt.Sprintf("want %q is neither connected nor disconnected", a.Want)
	}
}

// loadState takes over the devices a previous run of the helper connected and that are
// still connected (`nbd-client -c` exits 0 for a connected device).
func (h *helper) loadState() {
	if h.state == "" {
		return
	}
	data, err := os.ReadFile(h.state)
	if err != nil {
		return
	}
	var saved map[string]nbdTarget
	if err := json.Unmarshal(data, &saved); err != nil {
		h.say("PIFOUNDRY-ATTACH error state %s: %v (starting without it)", h.state, err)
		return
	}
	for dev, t := range saved {
		if _, err := h.nbd("-c", dev); validDevice(dev) && err == nil {
			h.connected[dev] = t
		}
	}
}

// saveState writes `connected` to the state file (a temp file, then a rename).
func (h *helper) saveState() {
	if h.state == "" {
		return
	}
	data, _ := json.Marshal(h.connected)
	tmp := h.state + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		h.say("PIFOUNDRY-ATTACH error state %s: %v", h.state, err)
		return
	}
	if err := os.Rename(tmp, h.state); err != nil {
		h.say("PIFOUNDRY-ATTACH error state %s: %v", h.state, err)
	}
}

func validDevice(dev string) bool {
	n := strings.TrimPrefix(dev, "/dev/nbd")
	if n == dev || n == "" || len(n) > 2 {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (h *helper) nbd(args ...string) (string, error) {
	out, err := exec.Command(h.nbdClient, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (h *helper) confirm(disk, state, msg string) error {
	body := map[string]string{"state": state}
	if msg != "" {
		body["message"] = msg
	}
	data, _ := json.Marshal(body)
	resp, err := h.client.Post(h.api+"/pifoundry/v1/attachments/"+url.PathEscape(disk), "application/json", bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST confirm: %s", resp.Status)
	}
	return nil
}

// notifyReady sends READY=1 to systemd's notify socket (Type=notify), when there is one.
func notifyReady() {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("READY=1"))
}

func (h *helper) say(format string, args ...interface{}) {
	line := fmt.Sprintf(format, args...)
	fmt.Println(line)
	if h.console == "" {
		return
	}
	if f, err := os.OpenFile(h.console, os.O_WRONLY|os.O_APPEND|syscall.O_NOCTTY, 0); err == nil {
		fmt.Fprintf(f, "\r\n%s\r\n", line)
		f.Close()
	}
}
